"""Notebook 02's figures: the paper's Figure 4 shape (row-normalised confusion per language,
with kappa and n on every panel), and agreement against a language's pre-training data."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from gradedrel.annotation.agreement import row_normalised_confusion


def confusion_grid(pairs: pd.DataFrame, order, kappas: pd.DataFrame, title: str, ncols: int = 6):
    """One heatmap per language (rows: A's grade; cells: share of B's grades given A's), its
    panel titled with quadratic kappa, its 95% interval and the number of pairs."""
    shown = [lang for lang in order if lang in set(pairs["lang"])]
    ncols = max(1, min(ncols, len(shown)))
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols, 2.8 * nrows), squeeze=False)
    for ax, lang in zip(axes.flat, shown):
        mine = pairs[pairs["lang"] == lang]
        _shares_heatmap(ax, row_normalised_confusion(mine["score_a"], mine["score_b"]))
        k = kappas.loc[lang]
        ax.set_title(f"{lang}  κ={k['kappa']:.2f} [{k['low']:.2f}, {k['high']:.2f}]\nn={len(mine)}",
                     fontsize=8)
        ax.set_xlabel("B")
        ax.set_ylabel("A")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _shares_heatmap(ax, shares: pd.DataFrame):
    """Cells coloured and annotated with their share (seaborn's heatmap draws the whole
    figure on every call to check its tick labels, which made a grid of them quadratic)."""
    values = shares.to_numpy(dtype=float)
    ax.imshow(values, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 else "black")
    ax.set_xticks(range(values.shape[1]), shares.columns)
    ax.set_yticks(range(values.shape[0]), shares.index)


def resource_axis(table: pd.DataFrame, title: str):
    """κ (A vs B, with its interval), κ (B in English vs B in the language, same content) and
    B's AUC for A's grade-3 pairs, against the language's CC-100 size (log scale)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = table["size_gib"]
    for column, colour, label in (("kappa", "tab:blue", "κ(rubric, B)"),
                                  ("kappa_vs_en", "tab:orange", "κ(B in en, B), same content (en: reference)")):
        if column not in table:
            continue
        prefix = "" if column == "kappa" else f"{column}_"     # kappa's interval: low, high
        low, high = table.get(f"{prefix}low"), table.get(f"{prefix}high")
        yerr = None if low is None else np.vstack([table[column] - low, high - table[column]])
        shift = 1.0 if column == "kappa" else 1.04      # side by side, not on top of each other
        axes[0].errorbar(x * shift, table[column], yerr=yerr, fmt="o", color=colour, capsize=2, label=label)
    for lang, row in table.iterrows():
        axes[0].annotate(lang, (row["size_gib"], row["kappa"]), fontsize=7, xytext=(3, 3),
                         textcoords="offset points")
        axes[1].annotate(lang, (row["size_gib"], row["auc_grade3"]), fontsize=7, xytext=(3, 3),
                         textcoords="offset points")
    axes[1].scatter(x, table["auc_grade3"], color="tab:green")
    axes[1].axhline(0.5, ls="--", color="grey", lw=1)
    # plain numbers at round sizes: the log axis's own minor labels (3×10¹, 4×10¹) run into
    # each other at this width
    ticks = [t for t in (10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000)
             if x.min() / 1.25 <= t <= x.max() * 1.25]
    for ax, ylabel in zip(axes, ("quadratic κ (95% interval)", "AUC of B's expected grade, grade 3")):
        ax.set_xscale("log")
        if len(ticks) >= 2:
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("CC-100 pre-training text (GiB, log scale; XLM-R paper)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
