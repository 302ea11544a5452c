"""Notebook 07's reading of an alpha table (sweeps/hybrid_tables.py) on hand-made rows."""
import pandas as pd

from gradedrel.sweeps import hybrid_tables as ht


def _table(xx, xy, pooled, bias):
    rows = [{"model": "zero-shot", "alpha": None, "seed": None, "X-X mAP": 0.8, "X-Y mAP": 0.6,
             "pooled mAP": 0.3, "language bias": 400.0}]
    for a, x1, x2, p, b in zip((0.0, 0.5, 1.0), xx, xy, pooled, bias):
        rows.append({"model": f"alpha={a:g} seed=0", "alpha": a, "seed": 0, "X-X mAP": x1,
                     "X-Y mAP": x2, "pooled mAP": p, "language bias": b})
    # a second seed at alpha 0.5 and its mean row must not replace the first seed's
    rows.append({"model": "alpha=0.5 seed=1", "alpha": 0.5, "seed": 1, "X-X mAP": 0.99,
                 "X-Y mAP": 0.99, "pooled mAP": 0.99, "language bias": 1.0})
    rows.append({"model": "alpha=0.5 (mean of 2 seeds)", "alpha": 0.5, "seed": "mean",
                 "X-X mAP": 0.9, "X-Y mAP": 0.9, "pooled mAP": 0.9, "language bias": 5.0})
    return pd.DataFrame(rows)


def test_first_seed_rows_keep_one_row_an_alpha():
    rows = ht.first_seed_rows(_table((0.7, 0.8, 0.9), (0.6,) * 3, (0.5,) * 3, (100.0,) * 3))
    assert rows["model"].tolist() == ["alpha=0 seed=0", "alpha=0.5 seed=0", "alpha=1 seed=0"]


def test_findings_say_when_the_middle_wins_everything_and_when_not():
    middle = ht.findings(_table((0.7, 0.8, 0.75), (0.6, 0.7, 0.65), (0.5, 0.6, 0.55),
                                (150.0, 120.0, 180.0)), pd.DataFrame())
    assert middle[0].startswith("X-X mAP: best at alpha=0.5 (0.8000")
    assert "the point estimates agree" in middle[-1]
    split = ht.findings(_table((0.7, 0.8, 0.9), (0.6, 0.7, 0.65), (0.5, 0.6, 0.55),
                               (150.0, 120.0, 180.0)), pd.DataFrame())
    assert split[0].startswith("X-X mAP: best at alpha=1 (0.9000")
    assert split[3].startswith("language bias: best at alpha=0.5 (120.0000")
    assert "not reproduced" in split[-1]


def test_published_rows_name_their_source():
    paper = ht.paper_rows()
    assert set(paper["model"]) == {"XLM-R", "LaBSE", "mBERT"}
    assert paper["source"].notna().all()
    labse = paper[(paper["model"] == "LaBSE") & (paper["training"] == "hybrid")].iloc[0]
    assert (labse["X-X mAP"], labse["X-Y mAP"], labse["pooled mAP"]) == (0.817, 0.767, 0.682)
    mbert = paper[paper["model"] == "mBERT"].set_index("training")["pooled mAP"]
    assert mbert.to_dict() == {"En-En": 0.29, "X-X": 0.23, "X-X-mono": 0.52, "X-Y": 0.66}
