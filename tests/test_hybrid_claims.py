"""Notebook 07's claims rows (sweeps/hybrid_tables.claim_rows) on hand-made per-question values:
the seed's finding comes out supported when hybrid batches win everywhere, and the
intersection-union row fails as soon as one comparison goes the other way."""
import numpy as np
import pandas as pd

from gradedrel.claims import CONTRADICTED, NOT_SUPPORTED, SUPPORTED, claims_table
from gradedrel.retrieval.lareqa import BIAS
from gradedrel.sweeps.hybrid_tables import TESTED, claim_rows


def frame(shift: dict, n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Per-question values: a common question effect plus `shift[measure]` and small noise."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(99).uniform(0.3, 0.7, n)
    rows = []
    for setting, measure in TESTED:
        scale = 100.0 if measure == BIAS else 1.0
        values = scale * base + shift.get((setting, measure), 0.0) + rng.normal(0, 0.01 * scale, n)
        rows += [{"setting": setting, "measure": measure, "base_id": f"q{i}", "value": v}
                 for i, v in enumerate(values)]
    return pd.DataFrame(rows)


BETTER = {("X-X", "AP"): 0.05, ("X-Y", "AP"): 0.05, ("pooled", "AP"): 0.05, ("pooled", BIAS): -5.0}


def test_hybrid_best_everywhere_is_supported():
    values = {"alpha=0 seed=0": frame({}, seed=1), "alpha=1 seed=0": frame({}, seed=2),
              "alpha=0.5 seed=0": frame(BETTER, seed=3)}
    table = claims_table(claim_rows(values))
    assert len(table) == 9
    assert (table["verdict"] == SUPPORTED).all(), table[["claim", "effect", "q", "verdict"]]
    bias = table[table["claim"].str.contains("language bias than")]
    assert (bias["effect"] < 0).all() and len(bias) == 2
    assert "8 of 8" in table.iloc[-1]["claim"] and table.iloc[-1]["effect"] > 0


def test_one_comparison_the_other_way_fails_the_finding():
    worse_xx = {**BETTER, ("X-X", "AP"): -0.05}
    values = {"alpha=0 seed=0": frame({}, seed=1), "alpha=1 seed=0": frame({}, seed=2),
              "alpha=0.5 seed=0": frame(worse_xx, seed=3)}
    table = claims_table(claim_rows(values))
    xx = table[table["claim"].str.contains("X-X mAP")]
    assert (xx["verdict"] == CONTRADICTED).all()
    last = table.iloc[-1]
    assert "6 of 8" in last["claim"] and last["effect"] < 0
    assert last["verdict"] == CONTRADICTED                 # every comparison significant, two against


def test_mean_of_seeds_is_preferred_and_missing_alpha_gives_no_rows():
    values = {"alpha=0 seed=0": frame({}, seed=1), "alpha=0 seed=1": frame({}, seed=4),
              "alpha=0 (mean of 2 seeds)": frame({}, seed=5), "alpha=0.5 seed=0": frame(BETTER, seed=3)}
    rows = claim_rows(values)
    assert len(rows) == 5                                  # no alpha=1: four rows and the summary
    assert all("alpha=0 (mean of 2 seeds)" in r["test"] for r in rows[:4])
    assert claim_rows({"alpha=0 seed=0": frame({})}) == []


def test_a_weak_comparison_against_the_claim_is_not_supported():
    slightly_worse = {**BETTER, ("X-Y", "AP"): -0.0005}      # far inside the noise
    values = {"alpha=0 seed=0": frame({}, seed=1), "alpha=1 seed=0": frame({}, seed=2),
              "alpha=0.5 seed=0": frame(slightly_worse, seed=3)}
    last = claims_table(claim_rows(values)).iloc[-1]
    assert last["p"] > 0.05 and last["verdict"] == NOT_SUPPORTED


def test_beside_paper_takes_the_mean_of_seeds_where_there_is_one():
    from gradedrel.sweeps.hybrid_tables import beside_paper
    cols = {"X-X mAP": 0.8, "X-Y mAP": 0.7, "pooled mAP": 0.6}
    table = pd.DataFrame([
        {"model": "zero-shot", "alpha": np.nan, "seed": None, **cols},
        {"model": "alpha=0 seed=0", "alpha": 0.0, "seed": 0, **cols},
        {"model": "alpha=1 seed=0", "alpha": 1.0, "seed": 0, **cols},
        {"model": "alpha=1 seed=1", "alpha": 1.0, "seed": 1, **cols},
        {"model": "alpha=1 (mean of 2 seeds)", "alpha": 1.0, "seed": "mean", **dict(cols, **{"X-X mAP": 0.9})}])
    paper = pd.DataFrame([{"model": "XLM-R", "training": "X-X", "X-X mAP": 0.792, "X-Y mAP": 0.674,
                           "pooled mAP": 0.547, "batches": "mono", "source": "paper"}])
    out = beside_paper(table, paper).set_index("training")
    mono = [t for t in out.index if t.startswith("X-X (mono")][0]
    assert mono.endswith("mean of 2 seeds") and out.loc[mono, "X-X mAP"] == 0.9
    assert out.loc["X-Y (cross batches)", "X-X mAP"] == 0.8          # one seed: that run
    assert "XLM-R" in set(out["model"])
