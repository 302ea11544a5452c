"""The claims tables' rule and tests (gradedrel.claims): worked examples, each of which a
changed rule would fail."""
import numpy as np
import pandas as pd
import pytest

from gradedrel import claims


@pytest.mark.parametrize("effect, p, q, ci, direction, expected", [
    (0.04, 0.001, None, (0.02, 0.06), 1, "supported"),
    (-0.04, 0.001, None, (-0.06, -0.02), -1, "supported"),
    (-0.04, 0.001, None, (-0.06, -0.02), 1, "contradicted"),
    # significant by p, not after the correction: the corrected q decides
    (0.62, 0.042, 0.17, (0.35, 0.77), 1, "consistent but not significant"),
    # q below 0.05 but the bootstrap interval spans 0: not significant
    (0.40, 0.01, 0.03, (-0.01, 0.58), 1, "consistent but not significant"),
    (-0.01, 0.3, None, (-0.03, 0.01), 1, "not supported"),
    (0.0, 0.9, None, (-0.01, 0.01), 1, "not supported"),
    (np.nan, np.nan, None, (np.nan, np.nan), 1, "untestable here"),
    (0.3, np.nan, None, (np.nan, np.nan), 1, "untestable here"),
    (0.3, 0.04, None, (np.nan, np.nan), 1, "supported"),           # no interval: p alone
])
def test_verdict_rule(effect, p, q, ci, direction, expected):
    assert claims.verdict(effect, p, q, *ci, direction=direction) == expected


def test_a_family_is_bh_corrected_together_and_decides_the_verdict():
    # p = 0.01, 0.04, 0.03 -> BH: sorted 0.01*3/1 = 0.03, 0.03*3/2 = 0.045, 0.04*3/3 = 0.04
    # -> monotone: 0.03, 0.04, 0.04 (the 0.03 row takes min(0.045, 0.04))
    rows = [claims.row("a", "t", 10, 0.5, p=0.01, family="tests"),
            claims.row("b", "t", 10, 0.5, p=0.04, family="tests"),
            claims.row("c", "t", 10, 0.5, p=0.03, family="tests"),
            claims.row("d", "t", 10, 0.5, p=0.04),                            # alone: p decides
            claims.untestable("e", "needs runs this grid lacks")]
    table = claims.claims_table(rows)
    assert list(table.columns) == claims.COLUMNS
    assert table["q"].iloc[:3].tolist() == pytest.approx([0.03, 0.04, 0.04])
    assert (table["correction"].iloc[:3] == "BH over the 3 tests").all()
    assert table["correction"].iloc[3] == "none" and np.isnan(table["q"].iloc[3])
    assert table["verdict"].tolist() == ["supported"] * 4 + ["untestable here"]
    # a fourth test in the family raises every q: p = 0.04 no longer passes
    rows.append(claims.row("f", "t", 10, 0.5, p=0.9, family="tests"))
    table = claims.claims_table(rows)
    assert table.loc[table["claim"] == "b", "q"].item() == pytest.approx(0.04 * 4 / 3)
    assert table.loc[table["claim"] == "b", "verdict"].item() == "consistent but not significant"


def test_mean_sign_and_all_of_by_hand():
    out = claims.mean_test([1.0, 2.0, 3.0])
    # mean 2, sd 1, se 1/sqrt(3), t = 3.464 on 2 df: p = 0.0742; t(0.975, 2) = 4.303
    assert out["effect"] == 2.0 and out["n"] == 3
    assert out["p"] == pytest.approx(0.07418, abs=1e-4)
    assert out["ci_low"] == pytest.approx(2 - 4.3027 / np.sqrt(3), abs=1e-3)
    assert claims.mean_test([0.5, 0.5])["p"] == 0.0
    assert claims.sign_test(4, 4) == pytest.approx(0.125)        # 2 x (1/2)^4
    assert claims.sign_test(10, 16) == pytest.approx(0.4545, abs=1e-4)
    assert claims.all_of([0.01, 0.2, 0.03]) == 0.2


def test_sentences_and_the_readme_table_quote_the_rows(tmp_path):
    table = claims.claims_table([claims.row("κ falls with size", "Spearman", 11, 0.6196, 0.346, 0.765,
                                            p=0.042, family="trend tests"),
                                 claims.untestable("a control", "needs new training")])
    lines = claims.sentences(table)
    assert lines[0] == ("κ falls with size: +0.620 [+0.346, +0.765], n = 11, p = 0.04, q = 0.04 "
                        "(BH over the 1 trend tests): supported.")
    assert lines[1] == "a control: untestable here (needs new training)."
    results, rendered = tmp_path / "results", tmp_path / "notebooks"
    results.mkdir()
    rendered.mkdir()
    (rendered / "02_agreement.ipynb").write_text("{}")
    table.to_csv(results / "02_claims.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{claims.README_START}\nold\n{claims.README_END}\n\nafter\n")
    assert claims.update_readme(readme, results, rendered)
    text = readme.read_text()
    assert "| [02][nb02] | κ falls with size | 11 | +0.620 [+0.346, +0.765] | 0.04 (0.04) | **supported** |" in text
    assert "\n[nb02]: notebooks/02_agreement.ipynb\n" in text
    assert "**untestable here**" in text and "old" not in text and text.endswith("after\n")
    assert not claims.update_readme(readme, results, rendered)          # unchanged the second time


def test_the_committed_readme_table_is_the_claims_files():
    from gradedrel.paths import REPO_ROOT
    readme = (REPO_ROOT / "README.md").read_text()
    tables = claims.load_claims(REPO_ROOT / "data" / "results" / "xquad")
    assert set(tables) >= {"02", "03", "04", "05"}
    for key, table in tables.items():
        assert list(table.columns) == claims.COLUMNS, key
        assert set(table["verdict"]) <= set(claims.VERDICTS), key
    block = readme.split(claims.README_START)[1].split(claims.README_END)[0]
    links = {key: next(p.relative_to(REPO_ROOT).as_posix()
                        for p in (REPO_ROOT / "notebooks" / "rendered" / "xquad").glob(f"{key}_*.ipynb"))
             for key in tables}
    assert block.strip() == claims.readme_table(tables, links), "run: python -m gradedrel.claims readme"
