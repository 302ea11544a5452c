"""The figure check (gradedrel.figure_check): it finds text that overlaps other text or runs
out of its heatmap cell, passes a clean figure, and save_figure warns or raises with it."""
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from gradedrel import results  # noqa: E402
from gradedrel.figure_check import (FigureTextError, FigureTextWarning, check_figure,  # noqa: E402
                                    text_overlaps)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def clean_figure():
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax in axes:
        ax.plot([1, 2, 3], [3, 1, 2], label="a line")
        ax.set_title("a title")
        ax.set_xlabel("x label")
        ax.set_ylabel("y label")
        ax.legend()
    fig.suptitle("a figure")
    fig.tight_layout()
    return fig


def test_a_clean_figure_passes():
    assert text_overlaps(clean_figure()) == []


def test_two_texts_at_the_same_place_are_found():
    fig = clean_figure()
    ax = fig.axes[0]
    ax.text(2, 2, "planted text")
    ax.text(2, 2, "planted again")
    problems = text_overlaps(fig)
    assert [(p.kind, p.first, p.second) for p in problems] == [("overlap", "planted text", "planted again")]
    assert problems[0].width_pt > 20 and problems[0].height_pt > 5


def test_texts_with_a_halo_count_too():
    """Notebook 06's bar labels are drawn through a path-effect renderer (a white halo)."""
    from matplotlib import patheffects

    fig = clean_figure()
    halo = [patheffects.withStroke(linewidth=2, foreground="white")]
    fig.axes[0].annotate("planted text", (2, 2), path_effects=halo)
    fig.axes[0].annotate("planted again", (2, 2), path_effects=halo)
    assert [(p.first, p.second) for p in text_overlaps(fig)] == [("planted text", "planted again")]


def test_a_title_over_tick_labels_is_found():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    ax.set_title("a title pushed down", y=-0.2)   # onto the x tick labels
    assert any(p.kind == "overlap" and "a title pushed down" in (p.first, p.second)
               for p in text_overlaps(fig))


def test_log_axis_minor_labels_that_run_together_are_found():
    """Notebook 02's CC-100 axis as it was: 20-300 GiB on a log axis, 4.5 inches wide."""
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.scatter([20, 29, 46, 53, 300], [0.1, 0.3, 0.2, 0.4, 0.5])
    ax.set_xscale("log")
    problems = text_overlaps(fig)
    assert ("overlap", "3×10^{1}", "4×10^{1}") in {(p.kind, p.first, p.second) for p in problems}


def test_long_labels_in_small_heatmap_cells_are_found():
    """The figure issue 24 started from: four rows, eleven columns, labels like '+10.8%*' in
    cells narrower than them (seaborn's heatmap, as notebook 05 drew it)."""
    import seaborn as sns

    values = pd.DataFrame(np.random.default_rng(0).normal(5, 3, (4, 11)),
                          columns=[f"c{j}" for j in range(11)])
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.heatmap(values, annot=values.map(lambda v: f"{v:+.1f}%*"), fmt="", ax=ax,
                annot_kws={"size": 8})
    problems = text_overlaps(fig)
    kinds = {p.kind for p in problems}
    assert kinds == {"overlap", "outside cell"}
    assert sum(p.kind == "outside cell" for p in problems) >= 30


def test_labels_running_out_of_imshow_cells_are_found_without_touching_each_other():
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(np.eye(3))
    ax.text(0, 0, "a long label that leaves its cell", ha="left", va="center", fontsize=6)
    problems = text_overlaps(fig)
    assert [(p.kind, p.first) for p in problems] == [("outside cell", "a long label that leaves its cell")]


def test_texts_that_are_not_drawn_do_not_count():
    fig = clean_figure()
    hidden = fig.axes[0].text(2, 2, "hidden")
    hidden.set_visible(False)
    fig.axes[0].text(2, 2, "shown")
    fig.axes[0].text(2, 2, "   ")          # whitespace only
    fig.axes[1].set_xticks([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 10])   # 10 lies outside the view
    fig.axes[1].set_xlim(0.5, 3.5)
    assert text_overlaps(fig) == []


def test_the_new_notebook_05_heatmap_is_clean_at_its_size():
    """relative_change_heatmap as notebook 05 draws it on xquad: 4 x 11, every cell starred,
    the paper's value in 16 of them."""
    from gradedrel.sweeps.plots import relative_change_heatmap

    langs = ["ar", "en", "es", "ru"]
    cols = langs + ["de", "el", "hi", "th", "tr", "vi", "zh"]
    rel = pd.DataFrame(np.random.default_rng(1).uniform(-12, 12, (4, 11)), index=langs, columns=cols)
    stars = pd.DataFrame(True, index=langs, columns=cols)
    paper = pd.DataFrame(-17.71, index=langs, columns=langs)
    fig = relative_change_heatmap(rel, "a title as long as notebook 05's, relative change τ=1 → τ=3 [xquad]",
                                  stars=stars, paper=paper, n_queries=289)
    assert text_overlaps(fig) == []


def test_check_figure_warns_raises_or_skips_as_the_environment_says(monkeypatch):
    fig = clean_figure()
    fig.axes[0].text(2, 2, "planted text")
    fig.axes[0].text(2, 2, "planted again")
    monkeypatch.setenv("GRADEDREL_FIGURE_CHECK", "strict")
    with pytest.raises(FigureTextError, match="planted text"):
        check_figure(fig, "planted.png")
    monkeypatch.setenv("GRADEDREL_FIGURE_CHECK", "off")
    assert check_figure(fig) == []
    monkeypatch.delenv("GRADEDREL_FIGURE_CHECK")
    with pytest.warns(FigureTextWarning, match="planted.png: 1 text"):
        check_figure(fig, "planted.png")


def test_save_figure_writes_the_files_then_raises_under_strict(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "FIGURES_DIR", tmp_path)
    monkeypatch.setenv("GRADEDREL_FIGURE_CHECK", "strict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # a clean figure neither warns nor raises
        assert results.save_figure(clean_figure(), "p", "clean") == tmp_path / "p" / "clean.png"
    fig = clean_figure()
    fig.axes[0].text(2, 2, "planted text")
    fig.axes[0].text(2, 2, "planted again")
    with pytest.raises(FigureTextError, match=r"(?s)figures/p/bad.png: 1 text.*'planted text' overlaps"):
        results.save_figure(fig, "p", "bad")
    assert (tmp_path / "p" / "bad.png").exists() and (tmp_path / "p" / "bad.pdf").exists()
