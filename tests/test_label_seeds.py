"""What a second seed changes in the label-source grid (sweeps/label_seeds.py), on made-up
per-question values whose seed effects are known."""
import numpy as np
import pandas as pd
import pytest

from gradedrel.sweeps import label_seeds as lsd
from gradedrel.sweeps import label_tables as lt

N = 80


def _values(gain_seed1_en=0.1, shift=None):
    """Rubric runs, en and hi, tau 1-3, seeds 0 and 1, three evaluations. tau=3 gains 0.1 over
    tau=1 (tau=2 halfway) at seed 0 in both languages; at seed 1 English gains
    `gain_seed1_en`; `shift` adds a constant to one (lang, tau, seed) run."""
    rng = np.random.default_rng(0)
    rows = []
    for lang in ("en", "hi"):
        base = rng.uniform(0.3, 0.6, N)
        for seed in (0, 1):
            gain = gain_seed1_en if (seed == 1 and lang == "en") else 0.1
            for tau in (1, 2, 3):
                for evaluation in lt.EVALUATIONS:
                    value = base + gain * (tau - 1) / 2 + rng.normal(0, 0.005, N)
                    if shift and shift[:3] == (lang, tau, seed):
                        value = value + shift[3]
                    rows += [dict(source="A", lang=lang, tau=tau, size=250, seed=seed, objective="infonce",
                                  qrels=evaluation, query_id=f"{lang}:q{i}", value=v) for i, v in enumerate(value)]
    return pd.DataFrame(rows)


def test_seed_runs_find_a_known_seed_shift_and_only_it():
    values = _values(shift=("hi", 2, 1, 0.03))
    runs = lsd.seed_runs(values)
    assert len(runs) == 2 * 3 * 3 and set(runs["n"]) == {N}
    hit = runs[(runs["lang"] == "hi") & (runs["tau"] == 2)]
    assert hit["seed1_minus_seed0"].to_numpy() == pytest.approx([0.03] * 3, abs=0.003)
    assert (hit["q"] < 0.05).all()
    assert list(runs.columns) == lsd.RUN_COLUMNS
    only_seed0 = values[values["seed"] == 0]              # nothing to compare: empty tables, headers kept
    assert list(lsd.seed_runs(only_seed0).columns) == lsd.RUN_COLUMNS and lsd.seed_runs(only_seed0).empty
    assert list(lsd.seed_tau(only_seed0).columns) == lsd.TAU_COLUMNS and lsd.seed_tau(only_seed0).empty
    en = runs[runs["lang"] == "en"].set_index(["tau", "evaluation"])["seed1_minus_seed0"]
    assert en.loc[1].abs().max() < 0.003 and en.loc[3].to_numpy() == pytest.approx([0.0] * 3, abs=0.003)


def test_seed_tau_says_when_seeds_disagree_on_the_best_tau():
    values = _values(gain_seed1_en=-0.1)           # English's second seed reverses the tau order
    tau = lsd.seed_tau(values).set_index(["lang", "evaluation"])
    assert len(tau) == 6
    en, hi = tau.loc[("en", "sentence")], tau.loc[("hi", "sentence")]
    assert (en["best_tau_seed0"], en["best_tau_seed1"], en["same_best_tau"], en["same_sign"]) == (3, 1, False, False)
    assert en["tau3_minus_tau1_both"] == pytest.approx(0.0, abs=0.003)      # the two seeds cancel
    assert hi["same_best_tau"] and hi["tau3_minus_tau1_both"] == pytest.approx(0.1, abs=0.003)
    summary = lsd.seed_summary(lsd.seed_runs(values), lsd.seed_tau(values))
    assert summary.loc["sentence", "share_same_best_tau"] == 0.5
    assert summary.loc["sentence", "median_abs_seed_change"] == pytest.approx(0.0, abs=0.01)


def test_claims_average_the_two_seeds_and_stay_out_of_the_headline():
    from gradedrel.claims import SUPPORTED, claims_table
    values = _values(gain_seed1_en=0.0)            # en: 0.1 at seed 0, 0 at seed 1; hi: 0.1 at both
    table = claims_table(lsd.claims_rows(values, 250, langs=("en", "hi"))).set_index("claim")
    row = table.loc["rubric labels, sentence relevance: τ=3 trains better than τ=1 (250 instances, mean of seeds 0 and 1)"]
    assert row["effect"] == pytest.approx((0.05 + 0.1) / 2, abs=0.002) and row["verdict"] == SUPPORTED
    assert row["n"] == N and row["test"].endswith("mean of en, hi")
    assert lsd.claims_rows(values, 1000, langs=("en", "hi")) == []          # no seed 1 at 1000
    seed0 = claims_table(lt.claims_rows(values, 250, langs=("en", "hi"))).assign(size=250)
    both = pd.concat([seed0, table.reset_index().assign(size=250)])
    assert not lt.headline(both, langs=("en", "hi"))["claim"].str.contains("seeds").any()
    # without hi's seed-1 runs, the row is tested on English alone
    alone = lsd.claims_rows(values[~((values["lang"] == "hi") & (values["seed"] == 1))], 250, langs=("en", "hi"))
    assert alone[0]["test"].endswith("mean of en")


def test_seed_scatter_draws_without_overlaps():
    import matplotlib
    matplotlib.use("Agg")
    from gradedrel.figure_check import text_overlaps
    from gradedrel.sweeps import label_plots
    pts = lt.points(pd.concat([_values(shift=("hi", 2, 1, 0.03)),
                               _values().query("seed == 0 and tau == 1").assign(
                                   source="baseline", tau=0, size=0, objective="none")]))
    fig = label_plots.seed_scatter(pts)
    assert len(fig.axes) == 3 and "6 runs, n=80 each" in fig.axes[0].get_title()
    assert text_overlaps(fig) == []
