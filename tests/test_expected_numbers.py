"""The expected numbers in data/expected/ can tell right from wrong: the fine-tunes the
verification retrains differ from the baseline and from each other by more than their
tolerances (a fine-tune that no longer moves the model fails the check), the tolerances are
smaller than the study's effects, and notebook 01's expectations are absolute numbers, not
"1" (the share of a run's own output it reproduces)."""
import pandas as pd
import pytest

from conftest import REPO

EXPECTED = REPO / "data" / "expected"


def expected(profile: str, name: str) -> pd.DataFrame:
    return pd.read_csv(EXPECTED / profile / f"{name}.csv").set_index("key")


@pytest.mark.parametrize("profile", ["smoke", "xquad"])
def test_the_verified_fine_tunes_move_the_model_apart(profile):
    e3, e4 = expected(profile, "03_verify"), expected(profile, "04_verify")
    baseline = e3[e3.index.str.startswith("nDCG@10 baseline")]
    single = e3.drop(baseline.index)
    assert len(baseline) == len(single) == len(e4) == 1
    rows = {"baseline": baseline.iloc[0], "03": single.iloc[0], "04": e4.iloc[0]}
    for a, b in (("03", "baseline"), ("04", "baseline"), ("03", "04")):
        gap = abs(rows[a]["expected"] - rows[b]["expected"])
        assert gap > rows[a]["tolerance"] + rows[b]["tolerance"], (
            f"{profile}: {a} and {b} are {gap:.6f} apart, within their tolerances: the check "
            "cannot tell them apart")


@pytest.mark.parametrize("profile", ["smoke", "xquad"])
def test_the_expected_kappas_are_not_those_of_a_constant_annotator(profile):
    kappas = expected(profile, "02_verify")
    assert len(kappas) >= 2
    assert (kappas["expected"].abs() > kappas["tolerance"] + 0.05).all(), kappas


@pytest.mark.parametrize("profile", ["smoke", "xquad"])
def test_notebook_01_expects_absolute_numbers(profile):
    e1 = expected(profile, "01_verify")
    absolute = e1[e1.index.str.startswith(("answer sentence in top-", "mean rubric grade of top-"))]
    assert len(absolute) == 2
    grade = absolute[absolute.index.str.startswith("mean rubric grade")]["expected"].iloc[0]
    assert 0 < grade < 3          # a mean over candidates of several grades, not a share of 1


def test_xquad_retrieval_tolerances_are_below_the_studys_effects():
    """A tolerance as large as the effects the study reports (mixtures -0.0002 to -0.0198,
    seed range 0.0014) could pass a wrong number."""
    for name in ("00_verify", "03_verify", "04_verify", "05_verify"):
        tol = expected("xquad", name)["tolerance"]
        assert (tol <= 0.001).all(), f"{name}: {tol.to_dict()}"
