"""Figures of the threshold paper's shapes, drawn from sweeps.analysis tables.

threshold_curves        Figure 5 / 6: nDCG@10 against training size, a line per tau, the
                        un-fine-tuned baseline dashed, one subplot per language; filled
                        markers where the point differs from the baseline significantly
                        (Benjamini-Hochberg q < 0.05 over the figure's points); 95%
                        intervals over questions, single seeds where several ran
relative_change_heatmap Table 2 as a red-green heatmap (red: tau=1 better)
pair_curves             Figure 7: for each language pair, both directions against tau,
                        each with its baseline dashed
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
                     measure: str = "nDCG@10", ncols: int = 4, test: str = "paired t-test"):
    """`points`: sweeps.analysis.compare_to_reference(..., "target") rows of one annotator.
    A point is the mean over seeds; its bar is the 95% interval over queries of its
    difference from the baseline (the first seed's), drawn around the point; where several
    seeds ran, each seed is a small dot beside it."""
    langs = [lang for lang in langs if lang in set(points["target"])]
    fig, axes = _grid(len(langs), ncols)
    for ax, lang in zip(axes, langs):
        mine = points[points["target"] == lang]
        for tau, g in mine.groupby("tau"):
            first = g[g["seed"] == g["seed"].min()].groupby("size_value")
            half = ((first["ci_high"].mean() - first["ci_low"].mean()) / 2) if "ci_low" in g else None
            agg = (g.groupby("size_value").agg(mean=("mean", "mean"), significant=("significant", "all"),
                                               seeds=("seed", "nunique")).sort_index())
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
    fig.suptitle(title + f"\n(filled marker: differs from the baseline, {test}, BH q < 0.05; bars: 95% "
                 "interval over questions; x: single seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def relative_change_heatmap(matrix: pd.DataFrame, title: str, stars: pd.DataFrame | None = None):
    """Annotated red-green heatmap of relative changes (%), symmetric colour range."""
    import seaborn as sns

    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) if matrix.size else 1.0
    limit = limit or 1.0
    text = matrix.map(lambda v: "" if pd.isna(v) else f"{v:+.1f}%")
    if stars is not None:
        text = text + stars.reindex_like(matrix).fillna(False).map(lambda s: "*" if s else "")
    n = max(len(matrix), 1)
    fig, ax = plt.subplots(figsize=(max(0.75 * n + 3, 6), max(0.6 * n + 2, 4)))
    sns.heatmap(matrix, annot=text, fmt="", cmap="RdYlGn", vmin=-limit, vmax=limit, center=0,
                ax=ax, cbar_kws={"label": "relative change τ=1 → τ=3 (%)"}, annot_kws={"size": 8})
    ax.set_xlabel("corpus language")
    ax.set_ylabel("query language (= training language)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


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
        ax.set_title(f"{x} / {y}", fontsize=9)
        ax.set_xticks(sorted(set(own["tau"])))
        ax.set_xlabel("τ")
        ax.set_ylabel(measure)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title + "\n(dashed: the un-fine-tuned baseline of the same direction)", fontsize=10)
    fig.tight_layout()
    return fig
