"""The label-source grid's figures (issue 23), drawn from label_tables' points table.

tau_by_source   rows = evaluations (sentence / graded / paragraph relevance), columns =
                languages; in each panel the change in nDCG@10 from the un-fine-tuned
                baseline against tau, one line per label source at one size (seed 0), 95%
                paired t intervals over the panel's n questions, filled markers where BH q <
                0.05 over the whole points table; the graded objectives, where run, as
                markers at the right ("KL", "KL+I").
seed_scatter    one panel per evaluation: seed 1's change from the baseline against seed
                0's, per configuration run at both seeds (the diagonal: no seed effect).
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


TAU_MARKER = {1: "o", 2: "s", 3: "^"}


def seed_scatter(points: pd.DataFrame, alpha: float = 0.05):
    """One panel per evaluation: each threshold configuration run at both seeds as a point,
    x = seed 0's change from the baseline, y = seed 1's (label_tables.points rows), colour =
    source, marker = tau; on the diagonal a second seed changes nothing. Filled: both seeds'
    changes at BH q < alpha."""
    thr = points[points["objective"] == "infonce"]
    key = ["source", "evaluation", "lang", "size", "tau"]
    both = thr[thr["seed"] == 0].merge(thr[thr["seed"] == 1], on=key, suffixes=("_0", "_1"))
    evaluations = [e for e in EVALUATIONS if e in set(both["evaluation"])] or list(EVALUATIONS[:1])
    fig, axes = plt.subplots(1, len(evaluations), figsize=(3.6 * len(evaluations), 3.9), squeeze=False)
    for ax, evaluation in zip(axes[0], evaluations):
        panel = both[both["evaluation"] == evaluation]
        for source, (colour, _) in SOURCE_STYLE.items():
            for tau, marker in TAU_MARKER.items():
                g = panel[(panel["source"] == source) & (panel["tau"] == tau)]
                if len(g):
                    filled = (g["q_0"] < alpha) & (g["q_1"] < alpha)
                    ax.scatter(g["delta_0"], g["delta_1"], marker=marker, s=26, edgecolors=colour,
                               facecolors=[colour if f else "white" for f in filled])
        if len(panel):
            lo = min(panel["delta_0"].min(), panel["delta_1"].min())
            hi = max(panel["delta_0"].max(), panel["delta_1"].max())
            pad = 0.05 * (hi - lo or 1)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=0.8, ls="--")
            spread = (panel["delta_1"] - panel["delta_0"]).abs().median()
            ax.set_title(f"{evaluation} ({len(panel)} runs, n={int(panel['n_0'].max())} each)\n"
                         f"median |seed 1 − seed 0| = {spread:.4f}", fontsize=8)
        ax.axhline(0, color="black", lw=0.5)
        ax.axvline(0, color="black", lw=0.5)
        ax.set_xlabel("seed 0: Δ nDCG@10 vs baseline", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("seed 1: Δ nDCG@10 vs baseline", fontsize=8)
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=name) for c, name in SOURCE_STYLE.values()]
    handles += [plt.Line2D([], [], ls="", marker=m, mfc="white", color="black", label=f"τ={t}")
                for t, m in TAU_MARKER.items()]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=7, frameon=False)
    fig.suptitle("A second seed against the first (same instances and recipe; filled: both q < 0.05)", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    return fig
