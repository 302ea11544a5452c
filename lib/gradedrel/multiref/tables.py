"""Notebook 06's tables in the Max@R paper's shapes, from `scenarios.summarise` tables
(one row per target x pool x scenario x query language), and the paper's own numbers.

  paper            `paper_table1` (me5-base on XQuAD, Tables 1 and 4), `paper_table2_jina`
                   (jina-embeddings-v3, Tables 2 and 5), `paper_norm_check` /
                   `paper_norm_line` (the paper's Max@R-norm is the normalisation of the
                   mean Max@R), `paper_language_gap`, `paper_finetune_columns`
  Table 1          `multi_table` (Multi, pair pool), `table1_base` (ours beside the paper's
                   columns), `table1_base_lines`; `finetune_view` / `table1_finetune` (Base
                   vs fine-tunes)
  Table 2          `slash` ("English / target" cells), `one_ref_table` (Mono-Same,
                   Mono-Cross, Multi-1 on the paragraph pool), `one_ref_tables_by_model`,
                   `jina_table`
  Table 3          `table3_ablations` (Multi, Max@R-norm and Complete@10 per loss setting),
                   `paper_table3` (the paper's, Belebele), `table3_differences` (each
                   setting minus Ours, ours beside the paper's)
  the rest         `oracle_view`, `language_gap_lines`, `run_table`, `threshold_view`,
                   `summary_lines` (the notebook's closing summary)
"""
from __future__ import annotations

import pandas as pd

from gradedrel.multiref import scenarios as mr
from gradedrel.multiref.ablations import ABLATION_LABELS
from gradedrel.paths import DATA_DIR
from gradedrel.retrieval.metrics import max_at_r_norm_of_mean

ENGLISH = mr.ENGLISH
PAPER_DIR = DATA_DIR / "paper"
# the paper's XQuAD pool: one document per question-context pair and language
PAPER_POOL_SIZE = 2380
MULTI_COLUMNS = ["Complete@10 (%)", "Max@R", mr.PAPER_NORM, "Max@R-norm (per-query mean)"]
ORACLE_COLUMNS = ["part", "pool", "scenario", "query_lang", "pool_size", "Complete@10 (%)",
                  "Max@R", mr.PAPER_NORM, "Max@R-norm (per-query mean)", "nDCG@1 (%)", "MRR"]
# the paper's jina columns in `one_ref_table`'s shape: (scenario, measure, column prefix, format)
JINA_CELLS = [("Mono-Same", "nDCG@1", "same_ndcg1", ".1f"), ("Mono-Same", "MRR", "same_mrr", ".3f"),
              ("Mono-Cross", "nDCG@1", "cross_ndcg1", ".1f"), ("Mono-Cross", "MRR", "cross_mrr", ".3f")]
# Table 3's cells: (column label, summary column, format), and its row order
TABLE3_CELLS = [("Max@R-norm (paper)", mr.PAPER_NORM, ".2f"),
                ("Max@R-norm (per-query)", "Max@R-norm (per-query mean)", ".2f"),
                ("Complete@10", "Complete@10 (%)", ".1f")]
ABLATION_ORDER = ["base", "nce_psg", "full", "no_jsd", "no_nce"]


# --- the paper's numbers ----------------------------------------------------------------------

def paper_table1() -> pd.DataFrame:
    """The paper's XQuAD numbers for multilingual-e5-base, Base and Ours (Tables 1 and 4)."""
    return pd.read_csv(PAPER_DIR / "maxr_table1_me5base_xquad.csv")


def paper_table2_jina() -> pd.DataFrame:
    """The paper's Mono-Same / Mono-Cross numbers for jina-embeddings-v3 (Tables 2 and 5)."""
    return pd.read_csv(PAPER_DIR / "maxr_table2_jina_xquad.csv")


def paper_norm_check(paper_t1: pd.DataFrame, pool_size: int = PAPER_POOL_SIZE,
                     n_refs: int = 2) -> pd.DataFrame:
    """Every reported Max@R-norm (Base, then Ours) beside the normalisation of the same
    row's mean Max@R with |D| = `pool_size`."""
    return pd.concat([
        pd.DataFrame({"reported": paper_t1[f"{v}_maxr_norm"],
                      f"norm of mean Max@R, |D|={pool_size}": [
                          max_at_r_norm_of_mean(m, pool_size, n_refs) for m in paper_t1[f"{v}_maxr"]]})
        for v in ("base", "ours")], ignore_index=True)


def paper_norm_line(check: pd.DataFrame) -> str:
    return (f"paper's Max@R-norm vs our reading, over {len(check)} XQuAD cells (me5-base, Tables 1 "
            f"and 4): largest difference {(check.iloc[:, 0] - check.iloc[:, 1]).abs().max():.4f}")


def paper_language_gap(paper_t1: pd.DataFrame, english: str = ENGLISH) -> pd.Series:
    """The paper's Base Max@R gap per target: target-language queries minus English queries."""
    return (paper_t1[paper_t1["query_lang"] != english].set_index("target")["base_maxr"]
            - paper_t1[paper_t1["query_lang"] == english].set_index("target")["base_maxr"])


def paper_finetune_columns(paper_t1: pd.DataFrame) -> pd.DataFrame:
    """The paper's me5-base Base and Ours columns by (target, query_lang), column labels
    ("paper me5-base", COLUMN, "")."""
    cols = paper_t1.set_index(["target", "query_lang"])[
        ["base_complete10", "ours_complete10", "base_maxr", "ours_maxr", "base_maxr_norm",
         "ours_maxr_norm"]]
    cols.columns = pd.MultiIndex.from_tuples([("paper me5-base", c, "") for c in cols.columns])
    return cols


# --- zero-shot tables ---------------------------------------------------------------------------

def oracle_view(oracle: pd.DataFrame) -> pd.DataFrame:
    return oracle[ORACLE_COLUMNS]


def multi_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The Multi scenario on the pair pool by (target, query_lang): `MULTI_COLUMNS`."""
    rows = summary[(summary["pool"] == "pair") & (summary["scenario"] == "Multi")]
    return rows.set_index(["target", "query_lang"])[MULTI_COLUMNS]


def table1_base(base: pd.DataFrame, paper_t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1's shape: `multi_table` of the zero-shot summary, each metric beside the
    paper's me5-base value (NaN where the paper has no row)."""
    paper_base = paper_t1.set_index(["target", "query_lang"])[
        ["base_complete10", "base_maxr", "base_maxr_norm"]].rename(columns={
            "base_complete10": "paper me5-base Complete@10", "base_maxr": "paper me5-base Max@R",
            "base_maxr_norm": "paper me5-base Max@R-norm"})
    table = multi_table(base).join(paper_base, how="left")
    return table.reindex(columns=[
        "Complete@10 (%)", "paper me5-base Complete@10", "Max@R", "paper me5-base Max@R",
        mr.PAPER_NORM, "paper me5-base Max@R-norm", "Max@R-norm (per-query mean)"])


def table1_base_lines(table1: pd.DataFrame, english: str = ENGLISH) -> list[str]:
    """How our Max@R compares with the paper's, over the rows both have (none: no lines)."""
    both = table1.dropna(subset=["paper me5-base Max@R"])
    if not len(both):
        return []
    worse = (both["Max@R"] > both["paper me5-base Max@R"]).mean()
    en_rows = both.xs(english, level="query_lang")
    tgt_rows = both[both.index.get_level_values("query_lang") != english]
    return [f"{len(both)} rows with a paper counterpart: me5-small's mean Max@R is higher (worse) "
            f"than me5-base's in {worse:.0%} of them.",
            f"English queries: ours Max@R {en_rows['Max@R'].median():.1f} (median over pairs) vs "
            f"the paper's {en_rows['paper me5-base Max@R'].median():.1f}; target-language queries: "
            f"{tgt_rows['Max@R'].median():.1f} vs {tgt_rows['paper me5-base Max@R'].median():.1f}."]


def slash(en, tgt, fmt: str) -> str:
    """An "English / target" cell, e.g. slash(88.25, 71, ".1f") = "88.2 / 71.0"."""
    return f"{en:{fmt}} / {tgt:{fmt}}"


def one_ref_table(summary: pd.DataFrame, scenarios=("Mono-Same", "Mono-Cross", "Multi-1"),
                  pool: str = "paragraph", english: str = ENGLISH) -> pd.DataFrame:
    """Table 2's shape: a row per target, for each scenario nDCG@1 (%) and MRR as
    "English / target" cells."""
    rows = summary[summary["pool"] == pool].set_index(["target", "scenario", "query_lang"])
    out = {}
    for target in summary["target"].unique():
        cells = {}
        for sc in scenarios:
            en, tg = rows.loc[(target, sc, english)], rows.loc[(target, sc, target)]
            cells[(sc, "nDCG@1")] = slash(en["nDCG@1 (%)"], tg["nDCG@1 (%)"], ".1f")
            cells[(sc, "MRR")] = slash(en["MRR"], tg["MRR"], ".3f")
        out[target] = cells
    return pd.DataFrame(out).T


def jina_table(jina: pd.DataFrame, targets) -> pd.DataFrame:
    """The paper's jina-embeddings-v3 Base rows in `one_ref_table`'s shape, for those of
    `targets` it has."""
    jina = jina[jina["model"] == "Base"].set_index("target")
    view = pd.DataFrame({(sc, measure): [slash(a, b, fmt) for a, b in zip(jina[f"{col}_en"],
                                                                         jina[f"{col}_tgt"])]
                         for sc, measure, col, fmt in JINA_CELLS}, index=jina.index)
    return view.reindex([t for t in targets if t in view.index])


def language_gap_lines(gap: pd.DataFrame, paper_gap: pd.Series) -> list[str]:
    """Median Max@R gaps, CLIR (Mono-Cross, paragraph pool) and Multi (pair pool), and the
    paper's Multi gap where it has numbers."""
    g = gap.set_index(["pool", "scenario", "target"])["Max@R"].sort_index()
    clir, multi = g.loc[("paragraph", "Mono-Cross")], g.loc[("pair", "Multi")]
    lines = [f"Max@R gap, median over {len(multi)} targets: CLIR {clir.median():.1f}, Multi "
             f"{multi.median():.1f} (largest: {multi.idxmax()} {multi.max():.1f})."]
    if paper_gap.notna().any():
        lines.append(f"The paper's me5-base Multi gap, median over its {paper_gap.notna().sum()} "
                     f"XQuAD targets: {paper_gap.median():.1f} (largest: {paper_gap.idxmax()} "
                     f"{paper_gap.max():.1f}).")
    return lines


# --- fine-tune tables ----------------------------------------------------------------------------

def run_table(eval_records: list[dict]) -> pd.DataFrame:
    """Which evaluated model ran where and how long it took (seconds/step: NaN for Base)."""
    where = pd.DataFrame(eval_records)[["target", "variant", "tag", "device", "n_triplets", "steps",
                                        "train_seconds", "eval_seconds", "load_average"]]
    where["seconds/step"] = (where["train_seconds"] / where["steps"].where(where["steps"] > 0)).round(1)
    return where


def compute_time_line(runs: pd.DataFrame, tag_contains: str = "") -> str:
    """The summed training and evaluation hours of the fine-tunes in `run_table(...)` whose
    tag contains `tag_contains` (zero-shot rows excluded), by device."""
    chosen = runs[(runs["steps"] > 0) & runs["tag"].astype(str).str.contains(tag_contains, regex=False)]
    parts = [f"{device}: {len(rows)} fine-tunes, {rows['train_seconds'].sum() / 3600:.1f} h training "
             f"+ {rows['eval_seconds'].sum() / 3600:.1f} h evaluation"
             for device, rows in chosen.groupby("device")]
    return "; ".join(parts) or "no fine-tunes"


def finetune_view(summary: pd.DataFrame, models, pool: str = "pair", scenario: str = "Multi"
                  ) -> pd.DataFrame:
    """The fine-tune summary's rows of `models` in one pool and scenario, indexed by
    (target, query_lang, model, tag)."""
    rows = summary[(summary["pool"] == pool) & (summary["scenario"] == scenario)
                   & summary["model"].isin(models)]
    return rows.set_index(["target", "query_lang", "model", "tag"])


def table1_finetune(summary_ft: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1's shape for Base vs Ours on the held-out articles: the Multi rows (what
    06_table1_finetune.csv stores) and their pivot, a column per (metric, model, tag)."""
    view = finetune_view(summary_ft, ["base", "full"])[
        ["Complete@10 (%)", "Max@R", mr.PAPER_NORM, "Max@R-norm (per-query mean)", "pool_size"]]
    pivot = view.reset_index().pivot_table(
        index=["target", "query_lang"], columns=["model", "tag"],
        values=["Complete@10 (%)", "Max@R", mr.PAPER_NORM], aggfunc="first")
    return view, pivot


def one_ref_tables_by_model(summary_ft: pd.DataFrame, models=("base", "full")) -> list[pd.DataFrame]:
    """`one_ref_table` for each (target, model, tag) of `models`, one table per target with a
    row per model labelled "TARGET · LABEL [TAG]", the models in `ABLATION_ORDER`."""
    tables = []
    kept = summary_ft[summary_ft["model"].isin(list(models))]
    for target, of_target in kept.groupby("target", sort=False):
        rows = []
        for (model_name, tag), r in sorted(of_target.groupby(["model", "tag"], sort=False),
                                           key=lambda g: (ABLATION_ORDER.index(g[0][0]), g[0][1])):
            t = one_ref_table(r)
            t.index = [f"{target} · {ABLATION_LABELS[model_name]} [{tag}]"]
            rows.append(t)
        tables.append(pd.concat(rows))
    return tables


def table3_ablations(summary_ft: pd.DataFrame, english: str = ENGLISH) -> pd.DataFrame:
    """Table 3's shape: a row per (loss setting label, tag), for each target Max@R-norm
    (paper's and per-query) and Complete@10 in the Multi scenario (pair pool) as
    "English / target" cells; rows in `ABLATION_ORDER`, then by tag."""
    rows = summary_ft[(summary_ft["pool"] == "pair") & (summary_ft["scenario"] == "Multi")]
    table3 = {}
    for (target, model_name, tag), r in rows.groupby(["target", "model", "tag"], sort=False):
        r = r.set_index("query_lang")
        table3.setdefault((ABLATION_LABELS[model_name], tag), {}).update({
            (target, label): slash(r.loc[english, column], r.loc[target, column], fmt)
            for label, column, fmt in TABLE3_CELLS})
    table3 = pd.DataFrame(table3).T
    order = [ABLATION_LABELS[m] for m in ABLATION_ORDER]
    return table3.reindex(sorted(table3.index, key=lambda i: (order.index(i[0]), i[1])))


def paper_table3() -> pd.DataFrame:
    """The paper's ablation (Table 3, Belebele, Multi, Max@R-norm English / target queries)
    for gte-multilingual-base and jina-embeddings-v3."""
    return pd.read_csv(PAPER_DIR / "maxr_table3_ablations_belebele.csv")


def paper_table3_cells(paper_t3: pd.DataFrame) -> dict:
    """{(model, target, setting, "en" | "tgt"): Max@R-norm} of the paper's Table 3."""
    return {(mdl, t, st, q): v for mdl, t, st, en, tgt in
            zip(paper_t3["model"], paper_t3["target"], paper_t3["setting"], paper_t3["en"],
                paper_t3["tgt"]) for q, v in (("en", en), ("tgt", tgt))}


def table3_differences(summary_ft: pd.DataFrame, paper_t3: pd.DataFrame, tag: str,
                       english: str = ENGLISH) -> pd.DataFrame:
    """Each setting minus Ours in Max@R-norm (the paper's), Multi scenario, English and
    target-language queries: ours (the runs tagged `tag`, held-out XQuAD articles) beside
    the paper's two models on Belebele, for the targets we fine-tuned. Rows (target,
    setting); a setting we have not run yet has empty cells of ours."""
    rows = summary_ft[(summary_ft["pool"] == "pair") & (summary_ft["scenario"] == "Multi")
                      & summary_ft["tag"].isin([tag, "zero-shot"])]
    ours = {(t, m, "en" if q == english else "tgt"): v for t, m, q, v in
            zip(rows["target"], rows["model"], rows["query_lang"], rows[mr.PAPER_NORM])}
    paper = paper_table3_cells(paper_t3)
    table = {}
    targets = [t for t in dict.fromkeys(rows.loc[rows["model"] == "full", "target"])]
    for target in targets:
        for setting in (m for m in ABLATION_ORDER if m != "full"):
            cells = {}
            for q in ("en", "tgt"):
                mine = ours.get((target, setting, q))
                cells[("ours: me5-small, XQuAD", q)] = (
                    None if mine is None else mine - ours[(target, "full", q)])
                for model in dict.fromkeys(paper_t3["model"]):
                    theirs = paper.get((model, target, setting, q))
                    cells[(f"paper: {model}, Belebele", q)] = (
                        None if theirs is None else theirs - paper[(model, target, "full", q)])
            table[(target, ABLATION_LABELS[setting] + " − Ours")] = cells
    frame = pd.DataFrame(table).T.astype(float)
    frame.index.names = ["target", "setting"]
    return frame


def threshold_view(tau_table: pd.DataFrame) -> pd.DataFrame:
    """Notebook 03's tau models in the Multi scenario, a column per (metric, tau)."""
    return tau_table.pivot_table(index=["target", "query_lang"], columns="tau",
                                 values=["Complete@10 (%)", "Max@R", mr.PAPER_NORM])


# --- the closing summary ----------------------------------------------------------------------------

def _rows(summary: pd.DataFrame, pool: str, scenario: str) -> pd.DataFrame:
    return summary[(summary["pool"] == pool) & (summary["scenario"] == scenario)]


def summary_lines(base: pd.DataFrame, oracle: pd.DataFrame, summary_ft: pd.DataFrame,
                  english: str = ENGLISH) -> list[str]:
    """Markdown bullets: the pool's ceiling (the oracle), the zero-shot Multi and Multi-1
    medians, and each full fine-tune's Max@R-norm (paper) before and after."""
    en = english
    lines = []
    b = _rows(base, "pair", "Multi").set_index(["target", "query_lang"])
    o = _rows(oracle[oracle["part"] == "all"], "pair", "Multi")
    lines.append(f"* Ceiling of the paper's pool (perfect retriever, ties in trec_eval order): "
                 f"Complete@10 {o['Complete@10 (%)'].mean():.1f}%, Max@R {o['Max@R'].mean():.2f}, "
                 f"Max@R-norm (paper) {o[mr.PAPER_NORM].mean():.2f}.")
    en_b = b.xs(en, level="query_lang")
    tg_b = b[b.index.get_level_values("query_lang") != en].droplevel("query_lang")
    lines.append(f"* Zero-shot me5-small, Multi, median over {len(en_b)} targets: English queries "
                 f"Max@R {en_b['Max@R'].median():.1f} / Complete@10 "
                 f"{en_b['Complete@10 (%)'].median():.1f}%, "
                 f"target-language queries Max@R {tg_b['Max@R'].median():.1f} / Complete@10 "
                 f"{tg_b['Complete@10 (%)'].median():.1f}%; target queries do worse in "
                 f"{(tg_b['Max@R'] > en_b['Max@R']).mean():.0%} of the pairs.")
    m1 = _rows(base, "paragraph", "Multi-1").set_index(["target", "query_lang"])
    m1_target = m1[m1.index.get_level_values("query_lang") != en]
    lines.append(f"* Multi-1 (paragraph pool): nDCG@1 median "
                 f"{m1.xs(en, level='query_lang')['nDCG@1 (%)'].median():.1f}% for English queries, "
                 f"{m1_target['nDCG@1 (%)'].median():.1f}% "
                 f"for target queries: how often the other-language reference beats every paragraph "
                 f"in the query's own language.")
    if len(summary_ft):
        multi = _rows(summary_ft, "pair", "Multi")
        for (target, tag), r in multi[multi["model"] == "full"].groupby(["target", "tag"]):
            base_r = multi[(multi["model"] == "base") & (multi["target"] == target)]
            base_r, r = base_r.set_index("query_lang"), r.set_index("query_lang")
            lines.append(f"* Fine-tune {en}+{target} [{tag}, {r['device'].iloc[0]}]: Max@R-norm "
                         f"(paper) {base_r.loc[en, mr.PAPER_NORM]:.2f} → {r.loc[en, mr.PAPER_NORM]:.2f} "
                         f"(English queries), {base_r.loc[target, mr.PAPER_NORM]:.2f} → "
                         f"{r.loc[target, mr.PAPER_NORM]:.2f} ({target} queries), held-out articles, "
                         f"|D| = {int(r['pool_size'].iloc[0])}.")
    return lines


# --- intervals, size-matched gaps, the outlier (zero_shot_checks tables) -----------------------

def with_interval(mean: float, low: float, high: float, fmt: str) -> str:
    """'mean [low, high]', e.g. with_interval(2.35, 1.6, 3.2, ".1f") = "2.4 [1.6, 3.2]"."""
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def interval_view(intervals: pd.DataFrame, pool: str = "pair", scenario: str = "Multi",
                  measures=(("Complete@10", ".1f"), ("Max@R", ".1f"), ("Max@R-norm", ".1f")),
                  index=("target", "query_lang")) -> pd.DataFrame:
    """`index` rows, a "mean [95% interval]" cell per measure (those `intervals` has), and n."""
    rows = intervals[(intervals["pool"] == pool) & (intervals["scenario"] == scenario)]
    measures = [(m, fmt) for m, fmt in measures if (rows["measure"] == m).any()]
    cells = {}
    for measure, fmt in measures:
        m = rows[rows["measure"] == measure].set_index(list(index))
        label = "Max@R-norm (per-query mean)" if measure == "Max@R-norm" else measure
        cells[label] = [with_interval(a, b, c, fmt) for a, b, c in zip(m["mean"], m["ci_low"], m["ci_high"])]
        rows_index, n = m.index, m["n"]
    return pd.DataFrame(cells, index=rows_index).assign(n=n.to_numpy())


def matched_gap_view(gaps: pd.DataFrame, measure: str = "Max@R") -> pd.DataFrame:
    """Target rows, a column per pool: the English advantage "gap [95% interval]", and the
    pools' sizes as a last row."""
    rows = gaps[gaps["measure"] == measure]
    pools = list(dict.fromkeys(rows["pool"]))
    table = rows.pivot(index="target", columns="pool", values="gap")[pools]
    cells = rows.assign(cell=[with_interval(g, lo, hi, ".1f")
                              for g, lo, hi in zip(rows["gap"], rows["ci_low"], rows["ci_high"])])
    view = cells.pivot(index="target", columns="pool", values="cell").reindex(index=table.index)[pools]
    sizes = rows.groupby("pool", sort=False)["pool_size"].median().reindex(pools)
    view.loc["|D| (median)"] = [f"{s:.0f}" for s in sizes]
    return view


def matched_gap_lines(gaps: pd.DataFrame, measure: str = "Max@R") -> list[str]:
    """Median gap per pool over targets, and how many targets' intervals exclude zero."""
    rows = gaps[gaps["measure"] == measure]
    lines = []
    for pool, g in rows.groupby("pool", sort=False):
        above = int((g["ci_low"] > 0).sum())
        lines.append(f"{pool} (|D| ≈ {g['pool_size'].median():.0f}): median {measure} gap "
                     f"{g['gap'].median():.1f} over {len(g)} targets; {above} of them favour "
                     f"English with an interval above zero.")
    return lines


OUTLIER_COLUMNS = ["pair pool", "pair pool, refs first in ties", "pair pool, refs last in ties",
                   "paragraph pool", "paragraph pool, language offset removed",
                   "Mono-Cross nDCG@1 (%)", "score offset (en - target docs)", "target score SD",
                   "offset in target SDs",
                   "paragraph tokens (median)", "paragraphs over 512 tokens (%)"]


def outlier_view(factors: pd.DataFrame, table1: pd.DataFrame, english: str = ENGLISH) -> pd.DataFrame:
    """Complete@10 (%) of English queries in Multi under each variation, the factors, and
    the paper's me5-base value; sorted by the pair pool's Complete@10."""
    view = factors.set_index("target")[[c for c in OUTLIER_COLUMNS if c in factors.columns]]
    paper = table1.xs(english, level="query_lang")["paper me5-base Complete@10"]
    view = view.assign(**{"paper me5-base (pair pool)": paper.reindex(view.index)}).sort_values("pair pool")
    fine = {"score offset (en - target docs)": 4, "target score SD": 4}
    return view.round({c: fine.get(c, 2) for c in view.columns})


def outlier_lines(factors: pd.DataFrame, target: str = "zh") -> list[str]:
    """Where `target` stands among the targets on each factor (1 = lowest)."""
    view = factors.set_index("target")
    if target not in view.index:
        return []
    lines = []
    for col in ("pair pool", "paragraph pool", "paragraph pool, language offset removed",
                "Mono-Cross nDCG@1 (%)", "score offset (en - target docs)", "target score SD",
                "offset in target SDs"):
        if col in view:
            rank = int(view[col].rank(method="min")[target])
            lines.append(f"{target} {col}: {view.loc[target, col]:.4g}, rank {rank} of {len(view)} "
                         f"from the lowest (median of the others {view[col].drop(target).median():.4g}).")
    return lines


def outlier_findings(factors: pd.DataFrame, target: str = "zh") -> list[str]:
    """What the outlier table shows for `target`, each statement tested on the numbers."""
    view = factors.set_index("target")
    if target not in view.index or len(view) < 3:
        return []
    row, others = view.loc[target], view.drop(target)
    first, last = row["pair pool, refs first in ties"], row["pair pool, refs last in ties"]
    lowest_other = others["pair pool"].min()
    lines = [f"Tie order: on the pair pool {target}'s Complete@10 lies between {last:.2f} (references "
             f"last among equal scores) and {first:.2f} (first); the lowest other pair reaches "
             f"{lowest_other:.2f} with trec_eval's order, so ties "
             + ("do not explain the outlier." if first < lowest_other else "could explain it.")]
    para_gap = others["paragraph pool"].min() - row["paragraph pool"]
    lines.append(f"Pool: without copies (paragraph pool) {target} is at {row['paragraph pool']:.2f}, "
                 + (f"still {para_gap:.1f} points below the lowest other pair." if para_gap > 0
                    else "no longer the lowest pair."))
    centred_gap = others["paragraph pool, language offset removed"].min() - row["paragraph pool, language offset removed"]

    def below(gap):
        return (f"{gap:.1f} points below the lowest other pair" if gap > 0
                else f"{-gap:.1f} points above the lowest other pair")
    lines.append(f"Language offset: with each language's mean score removed, {target} moves from "
                 f"{row['paragraph pool']:.2f} to {row['paragraph pool, language offset removed']:.2f} "
                 f"({below(centred_gap)}, against {below(para_gap)} before).")
    if "offset in target SDs" in view:
        top = view["offset in target SDs"].idxmax()
        lines.append(f"English queries score {target}'s paragraphs {row['score offset (en - target docs)']:.3f} "
                     f"lower than English ones, with a spread (SD) of {row['target score SD']:.4f}: "
                     f"{row['offset in target SDs']:.2f} SDs, the largest is {top}'s "
                     f"({view['offset in target SDs'].max():.2f}); the other pairs' median is "
                     f"{others['offset in target SDs'].median():.2f}.")
    if "paragraph tokens (median)" in view:
        lines.append(f"Tokenisation: {target}'s paragraphs have a median of {row['paragraph tokens (median)']:.0f} "
                     f"tokens (others {others['paragraph tokens (median)'].median():.0f}); "
                     f"{row['paragraphs over 512 tokens (%)']:.2f}% exceed e5's 512, so truncation "
                     + ("is not the cause." if row["paragraphs over 512 tokens (%)"]
                        <= others["paragraphs over 512 tokens (%)"].median() else "may matter."))
    return lines


def seed_table(summary_ft: pd.DataFrame) -> pd.DataFrame:
    """Fine-tunes trained with several seeds (tags `BASE` and `BASE_seedN`): per (target,
    model, query language) the number of seeds and the mean and SD over seeds of Max@R-norm
    (paper's reading) and Complete@10, Multi scenario on the pair pool."""
    rows = _rows(summary_ft, "pair", "Multi")
    rows = rows[rows["model"] != "base"].assign(
        setting=lambda r: r["model"].map(ABLATION_LABELS),
        triplets=lambda r: r["tag"].str.replace(r"_seed\d+$", "", regex=True))
    table = rows.groupby(["target", "setting", "triplets", "query_lang"], sort=False).agg(
        seeds=("tag", "nunique"),
        maxr_norm_mean=(mr.PAPER_NORM, "mean"), maxr_norm_sd=(mr.PAPER_NORM, "std"),
        complete10_mean=("Complete@10 (%)", "mean"), complete10_sd=("Complete@10 (%)", "std"))
    return table[table["seeds"] > 1]


CLAIM_CELL = ("pair", "Multi", "Max@R")      # the paper's primary reading; lower is better


def claim_table(setting_tests: pd.DataFrame, paper_t3: pd.DataFrame, alpha: float = 0.05,
                english: str = ENGLISH) -> pd.DataFrame:
    """The paper's ablation claims (Ours beats each other setting) cell by cell: for every
    (setting, target, query language, tag) of `setting_tests` (study.paired_tests_between_settings),
    Max@R of Ours minus the setting's on the pair pool (negative: Ours ranks the second
    reference higher), its p-value, our verdict at `alpha`, and the verdict of the paper's
    Table 3 (sign of the Max@R-norm difference) for each of its models on that target."""
    pool, scenario, measure = CLAIM_CELL
    tests = setting_tests[(setting_tests["pool"] == pool) & (setting_tests["scenario"] == scenario)
                          & (setting_tests["measure"] == measure)]
    label_to_setting = {label: setting for setting, label in ABLATION_LABELS.items()}
    paper = paper_table3_cells(paper_t3)
    rows = []
    for r in tests.itertuples(index=False):
        setting = label_to_setting[r.b]
        q = "en" if r.query_lang == english else "tgt"
        verdict = ("unclear" if r.p_value >= alpha
                   else "Ours better" if r.difference < 0 else "Ours worse")
        row = {"setting": r.b, "target": r.target, "query": q, "tag": r.tag, "n": r.n,
               "Max@R, Ours − setting": r.difference, "p": r.p_value, "ours": verdict}
        for model in dict.fromkeys(paper_t3["model"]):
            full, other = paper.get((model, r.target, "full", q)), paper.get((model, r.target, setting, q))
            row[f"paper: {model}"] = (None if full is None or other is None
                                      else "Ours better" if full > other else "Ours worse")
        rows.append(row)
    return pd.DataFrame(rows)


def claim_lines(claims: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """One line per setting: how many of our cells (target × query language × seed) agree
    with "Ours beats it", contradict it or are unclear at `alpha`, beside the paper's count."""
    lines = []
    paper_cols = [c for c in claims.columns if c.startswith("paper: ")]
    for setting, rows in claims.groupby("setting", sort=False):
        counts = rows["ours"].value_counts()
        cells = rows.drop_duplicates(["target", "query"])    # the paper has one per cell, not per seed
        theirs = "; ".join(f"{col[len('paper: '):]} Ours better in "
                           f"{(cells[col] == 'Ours better').sum()} of {cells[col].notna().sum()}"
                           for col in paper_cols)
        lines.append(
            f"Ours vs {setting}: Ours better in {counts.get('Ours better', 0)}, worse in "
            f"{counts.get('Ours worse', 0)}, unclear (p ≥ {alpha}) in {counts.get('unclear', 0)} "
            f"of {len(rows)} cells ({rows['target'].nunique()} target(s) × "
            f"{rows['query'].nunique()} query languages, {rows['tag'].nunique()} tag(s); "
            f"Max@R, paired randomisation test); the paper (Table 3, Belebele, these targets): {theirs}")
    return lines
