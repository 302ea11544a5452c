"""Notebook 06's figure: the language gap in Max@R (the Max@R paper's Figure 2 shape).

language_gap_figure  two panels, (a) conventional CLIR (Mono-Cross, paragraph pool) and
                     (b) the Multi scenario (pair pool): a bar per target language with
                     our gap (target-language queries' Max@R minus English queries'),
                     the paper's me5-base gap as black diamonds in panel (b)
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import patheffects

PANELS = [("paragraph", "Mono-Cross", "(a) CLIR: Mono-Cross, 240 paragraphs"),
          ("pair", "Multi", "(b) Multi: En + target, pair pool")]


def language_gap_figure(gap: pd.DataFrame, paper_gap: pd.Series, targets, profile: str,
                        n_queries: int | None = None):
    """`gap`: `scenarios.language_gap` of the zero-shot summary; `paper_gap`: the paper's
    Max@R gap by target (`tables.paper_language_gap`); bars in the order of `targets`;
    `n_queries`: the questions behind each bar, in both panels' titles."""
    import seaborn as sns

    order = [t for t in targets]
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 0.9 * len(order) + 4), 3.8))
    for ax, (pool, scenario, title) in zip(axes, PANELS):
        g = gap[(gap["pool"] == pool) & (gap["scenario"] == scenario)].set_index("target").reindex(order)
        sns.barplot(x=order, y=g["Max@R"].to_numpy(), ax=ax, color="tab:blue", label="me5-small (ours)")
        if scenario == "Multi":
            ax.scatter(range(len(order)), paper_gap.reindex(order).to_numpy(), marker="D", color="black",
                       zorder=3, label="me5-base (paper)")
        fmt = ".1f" if np.nanmax(np.abs(g["Max@R"].to_numpy())) < 10 else ".0f"
        for i, v in enumerate(g["Max@R"].to_numpy()):
            # over the paper's diamond where one sits at the bar's top, with a white halo
            ax.annotate(f"{v:{fmt}}", (i, v), ha="center", va="bottom", fontsize=7, zorder=4,
                        path_effects=[patheffects.withStroke(linewidth=2, foreground="white")])
        ax.set_title(title + (f", n={n_queries} questions" if n_queries else ""), fontsize=10)
        ax.set_xlabel("target language")
        ax.set_ylabel("Max@R gap (target − English queries)")
        if scenario == "Multi":
            ax.legend(fontsize=8, loc="upper left")
        elif ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.suptitle(f"Language gap in Max@R, XQuAD, zero-shot [{profile}]", fontsize=11)
    fig.tight_layout()
    return fig
