"""The threshold paper's size findings per label source (sweeps/label_findings.py), on made-up
per-question values with known effects."""
import numpy as np
import pandas as pd
import pytest

from gradedrel.claims import CONTRADICTED, SUPPORTED, UNTESTABLE, claims_table
from gradedrel.sweeps import label_findings as lf
from gradedrel.sweeps import label_tables as lt

N = 80
# change from the baseline per (tau, size): tau=1 stays 0.03 below at both sizes, tau=2 and
# tau=3 start 0.02 below and end 0.01 above
CHANGE = {(1, 250): -0.03, (1, 1000): -0.03, (2, 250): -0.02, (2, 1000): 0.01, (3, 250): -0.02, (3, 1000): 0.01}


def _values(sizes=(250, 1000)):
    rng = np.random.default_rng(1)
    rows = []
    for lang in ("en", "hi"):
        base = rng.uniform(0.3, 0.6, N)
        for evaluation in lt.EVALUATIONS:
            rows += [dict(source="baseline", lang=lang, tau=0, size=0, seed=0, objective="none", qrels=evaluation,
                          query_id=f"{lang}:q{i}", value=v) for i, v in enumerate(base)]
            for (tau, size), change in CHANGE.items():
                if size in sizes:
                    value = base + change + rng.normal(0, 0.005, N)
                    rows += [dict(source="A", lang=lang, tau=tau, size=size, seed=0, objective="infonce",
                                  qrels=evaluation, query_id=f"{lang}:q{i}", value=v) for i, v in enumerate(value)]
    return pd.DataFrame(rows)


def test_size_finding_below_at_the_small_size_then_gaining():
    table = claims_table(lf.size_rows(_values(), langs=("en", "hi"))).set_index("claim")
    below = table.loc["rubric labels, graded relevance: at 250 instances training falls below the baseline"]
    assert below["effect"] == pytest.approx((-0.03 - 0.02 - 0.02) / 3, abs=0.002) and below["verdict"] == SUPPORTED
    assert below["n"] == N and below["test"].endswith("τ 1-3 of en, hi")
    growth = table.loc["rubric labels, graded relevance: from 250 to 1000 instances the runs gain"]
    assert growth["effect"] == pytest.approx((0 + 0.03 + 0.03) / 3, abs=0.002) and growth["verdict"] == SUPPORTED
    assert "6 (language, τ) runs" in growth["test"]
    assert table.loc["B labels, sentence relevance: at 250 instances training falls below the baseline",
                     "verdict"] == UNTESTABLE
    one_size = claims_table(lf.size_rows(_values(sizes=(250,)), langs=("en", "hi"))).set_index("claim")
    assert one_size.filter(like="the runs gain", axis=0)["verdict"].eq(UNTESTABLE).all()


def test_never_reaches_finds_the_curve_below_at_every_size():
    values = _values()
    table = claims_table(lf.never_reaches_rows(lt.points(values)))
    row = table[table["claim"].str.startswith("rubric labels, sentence relevance: a poorly chosen τ")].iloc[0]
    assert "(2 of 6 curves below it at every size; lowest: " in row["claim"]
    assert "τ=1)" in row["claim"] and row["verdict"] == SUPPORTED
    assert row["effect"] == pytest.approx(-0.03, abs=0.003)
    assert "BH over the 18 curves" in row["correction"]
    # lift tau=1 above the baseline at 1000 in both languages: no curve stays below
    lifted = values.copy()
    sel = (lifted["tau"] == 1) & (lifted["size"] == 1000)
    lifted.loc[sel, "value"] += 0.05
    table = claims_table(lf.never_reaches_rows(lt.points(lifted)))
    row = table[table["claim"].str.startswith("rubric labels, sentence relevance: a poorly chosen τ")].iloc[0]
    assert "(0 of 6 curves" in row["claim"] and row["verdict"] != SUPPORTED
    assert "τ=1)" not in row["claim"]           # all p = 1: the lowest is a tau=2 or 3 curve (+0.01, tau=1 +0.02)
    assert table["verdict"].eq(UNTESTABLE).sum() == 6                    # no B or noise runs


def test_size_finding_contradicted_when_small_sets_beat_the_baseline():
    values = _values()
    values.loc[values["size"] == 250, "value"] += 0.05
    table = claims_table(lf.size_rows(values, langs=("en", "hi"))).set_index("claim")
    assert table.loc["rubric labels, paragraph relevance: at 250 instances training falls below the baseline",
                     "verdict"] == CONTRADICTED
