"""The label-source grid's figure (issue 23), drawn from label_tables' points table.

tau_by_source   rows = evaluations (sentence / graded / paragraph relevance), columns =
                languages; in each panel the change in nDCG@10 from the un-fine-tuned
                baseline against tau, one line per label source at one size (seed 0), 95%
                paired t intervals over the panel's n questions, filled markers where BH q <
                0.05 over the whole points table; the graded objectives, where run, as
                markers at the right ("KL", "KL+I").
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

SOURCE_STYLE = {"A": ("#1b9e77", "rubric"), "A_Bnoise": ("#7570b3", "rubric + B noise (sim.)"),
                "B_fast": ("#d95f02", "B (Qwen 1.5B)")}
EVALUATIONS = ("sentence", "graded", "paragraph")
OBJECTIVE_X = {"kl": 4.0, "kl+infonce": 4.6}


def tau_by_source(points: pd.DataFrame, size: int, langs, graded: pd.DataFrame | None = None,
                  alpha: float = 0.05):
    """`points`: label_tables.points rows (threshold runs); `graded`: the same for the graded
    objectives (column `objective`), or None."""
    langs = [lang for lang in langs if lang in set(points["lang"])]
    fig, axes = plt.subplots(len(EVALUATIONS), max(1, len(langs)), figsize=(3.2 * max(1, len(langs)), 7.6),
                             squeeze=False, sharex=True)
    mine = points[(points["size"] == size) & (points["seed"] == 0)]
    if graded is not None:
        graded = graded[graded["size"] == size]
        graded = graded if len(graded) else None
    for r, evaluation in enumerate(EVALUATIONS):
        for c, lang in enumerate(langs):
            ax = axes[r][c]
            ax.axhline(0, color="black", lw=0.8, ls="--")
            panel = mine[(mine["evaluation"] == evaluation) & (mine["lang"] == lang)]
            for k, (source, (colour, name)) in enumerate(SOURCE_STYLE.items()):
                g = panel[panel["source"] == source].sort_values("tau")
                if g.empty:
                    continue
                x = g["tau"] + (k - 1) * 0.08
                ax.errorbar(x, g["delta"], yerr=[g["delta"] - g["ci_low"], g["ci_high"] - g["delta"]],
                            fmt="-", color=colour, lw=1.1, capsize=2, label=name)
                ax.scatter(x, g["delta"], s=22, zorder=3, edgecolors=colour,
                           facecolors=[colour if q < alpha else "white" for q in g["q"]])
                if graded is not None:
                    gg = graded[(graded["evaluation"] == evaluation) & (graded["lang"] == lang)
                                & (graded["source"] == source)]
                    for _, row in gg.iterrows():
                        gx = OBJECTIVE_X[row["objective"]] + (k - 1) * 0.08
                        ax.errorbar([gx], [row["delta"]], yerr=[[row["delta"] - row["ci_low"]],
                                                                [row["ci_high"] - row["delta"]]],
                                    fmt="s", color=colour, ms=4, capsize=2,
                                    mfc=colour if row["q"] < alpha else "white")
            n = int(panel["n"].max()) if len(panel) else 0
            ax.set_title(f"{lang}, {evaluation} (n={n})", fontsize=9)
            ticks = [1, 2, 3] + (list(OBJECTIVE_X.values()) if graded is not None else [])
            ax.set_xticks(ticks)
            ax.set_xticklabels(["τ1", "τ2", "τ3"] + (["KL", "KL+I"] if len(ticks) > 3 else []), fontsize=8)
            ax.tick_params(axis="y", labelsize=8)
            if c == 0:
                ax.set_ylabel("Δ nDCG@10 vs baseline", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"Label source x tau at {size} instances: change from the un-fine-tuned model "
                 "(95% intervals; filled: BH q < 0.05)", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    return fig
