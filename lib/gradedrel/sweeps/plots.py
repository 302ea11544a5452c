"""Figures of the threshold paper's shapes, drawn from sweeps.analysis tables.

threshold_curves        Figure 5 / 6: nDCG@10 against training size, a line per tau, the
                        un-fine-tuned baseline dashed, one subplot per language; filled
                        markers where the point differs from the baseline significantly
                        (Benjamini-Hochberg q < 0.05 over the figure's points); 95%
                        intervals over questions, single seeds where several ran
relative_change_heatmap Table 2 as a red-green heatmap (red: tau=1 better), the paper's
                        value in brackets where it has the pair
pair_curves             Figure 7: for each language pair, both directions against tau,
                        each with its baseline dashed and its number of questions
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

TAU_COLOURS = {1: "#1b9e77", 2: "#7570b3", 3: "#d95f02"}


def _grid(n: int, ncols: int, width: float = 3.4, height: float = 2.8):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def threshold_curves(points: pd.DataFrame, baseline: pd.DataFrame, langs, title: str,
                     measure: str = "nDCG@10", ncols: int = 4, test: str = "paired t-test",
                     tests: pd.DataFrame | None = None):
    """`points`: sweeps.analysis.compare_to_reference(..., "target") rows of one annotator;
    `tests`: sweeps.evidence.seed_mean_points of the same points. A point is the mean over
    seeds; its bar is the 95% interval over queries of that mean's difference from the
    baseline, its filled marker that difference's q < 0.05 (without `tests`: the first
    seed's interval, and filled where every seed is significant); where several seeds ran,
    each seed is a small cross beside it."""
    langs = [lang for lang in langs if lang in set(points["target"])]
    fig, axes = _grid(len(langs), ncols)
    for ax, lang in zip(axes, langs):
        mine = points[points["target"] == lang]
        for tau, g in mine.groupby("tau"):
            first = g[g["seed"] == g["seed"].min()].groupby("size_value")
            half = ((first["ci_high"].mean() - first["ci_low"].mean()) / 2) if "ci_low" in g else None
            agg = (g.groupby("size_value").agg(mean=("mean", "mean"), significant=("significant", "all"),
                                               seeds=("seed", "nunique")).sort_index())
            if tests is not None:
                t = tests[(tests["target"] == lang) & (tests["tau"] == tau)].set_index("size_value")
                half = ((t["ci_high"] - t["ci_low"]) / 2).reindex(agg.index)
                agg["significant"] = t["significant"].reindex(agg.index).fillna(False).astype(bool)
            colour = TAU_COLOURS.get(tau, "grey")
            ax.errorbar(agg.index, agg["mean"], yerr=None if half is None else half.reindex(agg.index),
                        fmt="-", color=colour, capsize=2, lw=1.2, label=f"τ={tau}")
            ax.scatter(agg.index, agg["mean"], s=28, zorder=3, edgecolors=colour,
                       facecolors=[colour if s else "white" for s in agg["significant"]])
            several = g[g["size_value"].isin(agg.index[agg["seeds"] > 1])]
            if len(several):
                ax.scatter(several["size_value"], several["mean"], s=8, color=colour, alpha=0.6,
                           marker="x", zorder=2)
        if lang in baseline.index:
            ax.axhline(baseline.loc[lang, lang], ls="--", color="black", lw=1, label="baseline")
        ax.set_title(f"{lang} (n={int(mine['n_queries'].median())} questions)", fontsize=9)
        ax.set_xlabel("training size")
        ax.set_ylabel(measure)
        ax.grid(alpha=0.3)
    if langs:
        axes[0].legend(fontsize=8)
    fig.suptitle(title + f"\n(point: mean over seeds; filled: it differs from the baseline, {test}, BH q < "
                 "0.05; bars: its 95% interval over questions; x: single seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def relative_change_heatmap(matrix: pd.DataFrame, title: str, stars: pd.DataFrame | None = None,
                            paper: pd.DataFrame | None = None, n_queries: int | None = None):
    """Annotated red-green heatmap of relative changes (%), symmetric colour range. A cell
    reads our change (one decimal, `*` where `stars` says the two models differ) and, where
    `paper` (indexed by query language, columns corpus language) has the pair, the paper's
    value below it in brackets; `n_queries` (questions a query language) goes in the title.
    Cells are sized for their labels: the figure grows with the number of columns."""
    import seaborn as sns
    from seaborn.utils import relative_luminance

    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) if matrix.size else 1.0
    limit = limit or 1.0
    mark = (stars.reindex_like(matrix).fillna(False).astype(bool) if stars is not None
            else pd.DataFrame(False, index=matrix.index, columns=matrix.columns))
    theirs = (paper.reindex(index=matrix.index, columns=matrix.columns) if paper is not None
              else pd.DataFrame(np.nan, index=matrix.index, columns=matrix.columns))
    two_lines = bool(theirs.notna().to_numpy().any())
    rows, cols = max(matrix.shape[0], 1), max(matrix.shape[1], 1)
    cell_w, cell_h = 0.62, 0.62 if two_lines else 0.45
    fig, ax = plt.subplots(figsize=(max(cell_w * cols + 2.6, 6), max(cell_h * rows + 2.0, 3.5)))
    cmap = plt.get_cmap("RdYlGn")
    sns.heatmap(matrix, annot=False, cmap="RdYlGn", vmin=-limit, vmax=limit, center=0, ax=ax,
                cbar_kws={"label": "relative change τ=1 → τ=3 (%)"})
    for i, q in enumerate(matrix.index):
        for j, d in enumerate(matrix.columns):
            v = matrix.loc[q, d]
            if pd.isna(v):
                continue
            label = f"{v:+.1f}" + ("*" if mark.loc[q, d] else "")
            if pd.notna(theirs.loc[q, d]):
                label += f"\n({theirs.loc[q, d]:+.1f})"
            colour = "black" if relative_luminance(cmap((v + limit) / (2 * limit))) > 0.408 else "white"
            ax.text(j + 0.5, i + 0.5, label, ha="center", va="center", fontsize=7.5, color=colour,
                    linespacing=1.15)
    ax.set_xlabel("corpus language")
    ax.set_ylabel("query language (= training language)")
    notes = [f"n = {n_queries} test questions a query language" if n_queries else None,
             "*: τ=3 and τ=1 differ (BH q < 0.05)" if mark.to_numpy().any() else None,
             "(in brackets): the paper's Table 2" if two_lines else None]
    notes = "; ".join(n for n in notes if n)
    ax.set_title(title + (f"\n{notes}" if notes else ""), fontsize=9)
    fig.tight_layout()
    return fig


def _questions(own: pd.DataFrame, x: str, y: str) -> str:
    """' (n=N)': the test questions behind a pair's points, or the range where the two
    directions differ; '' without an n_queries column."""
    if "n_queries" not in own:
        return ""
    n = own[own["query_lang"].isin([x, y]) & own["doc_lang"].isin([x, y])
            & (own["query_lang"] != own["doc_lang"])]["n_queries"].dropna()
    if n.empty:
        return ""
    low, high = int(n.min()), int(n.max())
    return f" (n={low} questions)" if low == high else f" (n={low}-{high} questions)"


def pair_curves(points: pd.DataFrame, baseline: pd.DataFrame, langs, title: str,
                measure: str = "nDCG@10", ncols: int = 5):
    """For each unordered pair {x, y}: x→y (model trained on x) and y→x against tau."""
    own = points[points["target"] == points["query_lang"]]
    pairs = [(x, y) for i, x in enumerate(langs) for y in langs[i + 1:]]
    fig, axes = _grid(len(pairs), ncols, width=3.0, height=2.5)
    for ax, (x, y) in zip(axes, pairs):
        for (q, d), colour in (((x, y), "#1f78b4"), ((y, x), "#e31a1c")):
            g = own[(own["query_lang"] == q) & (own["doc_lang"] == d)]
            g = g.groupby("tau")["mean"].mean().sort_index()
            ax.plot(g.index, g.values, "o-", color=colour, label=f"{q}→{d}")
            if q in baseline.index and d in baseline.columns:
                ax.axhline(baseline.loc[q, d], ls="--", color=colour, lw=1)
        ax.set_title(f"{x} / {y}" + _questions(own, x, y), fontsize=9)
        ax.set_xticks(sorted(set(own["tau"])))
        ax.set_xlabel("τ")
        ax.set_ylabel(measure)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title + "\n(dashed: the un-fine-tuned baseline of the same direction)", fontsize=10)
    fig.tight_layout()
    return fig
