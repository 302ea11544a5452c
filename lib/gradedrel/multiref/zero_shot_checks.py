"""What the zero-shot Max@R tables rest on (issue 12, items 3 and 4).

- `intervals`: percentile-bootstrap intervals over questions for the Multi and Mono-Cross
  rows (`metrics.mean_with_interval`).
- `matched_gaps`: the English-inclination gap (English-query value minus target-query value,
  paired by question) on pools of matched size: CLIR (Mono-Cross, one language's 240
  paragraphs) beside Multi on half the articles (about 2 x 120 paragraphs), the
  de-duplicated paragraph pool (480) and the paper's pair pool (2 x questions).
- `outlier_factors`: for each target, what moves Complete@10 of English queries in the
  Multi scenario: the pool construction (pair vs paragraph pool), the tie order among a
  paragraph's copies (references first / last), the cross-lingual match alone (Mono-Cross),
  a per-language score offset (documents' language-mean embedding subtracted, which
  removes each query's mean score difference between the two languages), that offset
  against the spread of a query's scores over the target's paragraphs, and the length of
  the target's paragraphs in tokens.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradedrel.data.collection import Collection
from gradedrel.multiref import scenarios as mr
from gradedrel.retrieval.metrics import mean_with_interval

ENGLISH = mr.ENGLISH
HALF_POOL = "half-articles"
INTERVAL_ROWS = (("pair", "Multi"), ("paragraph", "Multi"), (HALF_POOL, "Multi"),
                 ("paragraph", "Mono-Cross"))
INTERVAL_MEASURES = ("Max@R", "Max@R-norm", "Complete@10", "nDCG@1", "RR")
PERCENT = ("Complete@10", "nDCG@1")
GAP_MEASURES = ("Max@R", "Complete@10")
E5_MAX_TOKENS = 512
TIE_NUDGE = 1e-9      # far below float32 resolution near 1 (6e-8): reorders exact ties only


def article_halves(coll: Collection) -> tuple[list[str], list[str]]:
    """The collection's articles, alternately assigned to two halves (sorted by name)."""
    groups = sorted(coll.queries["group"].unique())
    return groups[0::2], groups[1::2]


def restrict(emb: dict, full: Collection, sub: Collection, frame: str) -> dict:
    """Rows of `emb[lang]` (aligned with full.topics / full.docs) for sub's rows."""
    id_col = "query_id" if frame == "topics" else "doc_id"
    out = {}
    for lang, vecs in emb.items():
        rows = pd.Index(getattr(full, frame)(lang)[id_col]).get_indexer(getattr(sub, frame)(lang)[id_col])
        if (rows < 0).any():
            raise ValueError(f"{(rows < 0).sum()} {lang} {frame} of the subset are not in the collection")
        out[lang] = vecs[rows]
    return out


def per_query(pair: Collection, target: str, query_emb: dict, paragraph_emb: dict,
              english: str = ENGLISH) -> pd.DataFrame:
    """`scenarios.evaluate_scenarios` on both pools, plus Multi on each half of the articles
    (pool `HALF_POOL`, every question evaluated once, against its own half's paragraphs)."""
    frames = [mr.evaluate_scenarios(pair, target, query_emb, paragraph_emb, english=english)]
    for half in article_halves(pair):
        sub = pair.subset(groups=half)
        frames.append(mr.evaluate_scenarios(
            sub, target, restrict(query_emb, pair, sub, "topics"),
            restrict(paragraph_emb, pair, sub, "docs"), pools=("paragraph",), scenarios=("Multi",),
            english=english).assign(pool=HALF_POOL))
    return pd.concat(frames, ignore_index=True)


def intervals(per_query_frame: pd.DataFrame, rows=INTERVAL_ROWS, measures=INTERVAL_MEASURES,
              by=()) -> pd.DataFrame:
    """Mean and 95% bootstrap interval over questions for each (target, *by, pool, scenario,
    query language, measure); Complete@10 and nDCG@1 in percent; `pool_size` is the mean
    |D| a query saw (the half pools differ slightly in size). `by`: more key columns (the
    fine-tunes' model and tag)."""
    keep = per_query_frame[pd.Series(list(zip(per_query_frame["pool"], per_query_frame["scenario"])),
                                     index=per_query_frame.index).isin(rows)
                           & per_query_frame["measure"].isin(measures)]
    out = []
    keys = ["target", *by, "pool", "scenario", "query_lang", "measure"]
    for key, group in keep.groupby(keys, sort=False):
        scale = 100.0 if key[-1] in PERCENT else 1.0
        mean, low, high = mean_with_interval(scale * group["value"].to_numpy())
        out.append((*key, len(group), float(group["pool_size"].mean()), mean, low, high))
    return pd.DataFrame(out, columns=keys + ["n", "pool_size", "mean", "ci_low", "ci_high"])


def matched_gaps(per_query_frame: pd.DataFrame, english: str = ENGLISH,
                 measures=GAP_MEASURES) -> pd.DataFrame:
    """English advantage per question (English-query value minus the same question's
    target-query value; sign flipped for Max@R so that positive favours English), its mean
    and 95% bootstrap interval, for CLIR (Mono-Cross, paragraph pool) and Multi on the half,
    paragraph and pair pools."""
    views = (("CLIR (Mono-Cross)", "paragraph", "Mono-Cross"), ("Multi, half the articles", HALF_POOL, "Multi"),
             ("Multi, paragraph pool", "paragraph", "Multi"), ("Multi, pair pool (paper)", "pair", "Multi"))
    out = []
    frame = per_query_frame.assign(question=per_query_frame["query_id"].str.split(":", n=1).str[1])
    for target, by_target in frame.groupby("target", sort=False):
        for label, pool, scenario in views:
            rows = by_target[(by_target["pool"] == pool) & (by_target["scenario"] == scenario)]
            for measure in measures:
                m = rows[rows["measure"] == measure]
                if m.empty:
                    continue
                wide = m.pivot_table(index="question", columns="query_lang", values="value")
                sign = -1.0 if measure in mr.LOWER_IS_BETTER else 1.0
                scale = 100.0 if measure in PERCENT else 1.0
                diff = (sign * scale * (wide[english] - wide[target])).dropna().to_numpy()
                mean, low, high = mean_with_interval(diff)
                out.append((target, label, measure, float(m["pool_size"].mean()), len(diff),
                            mean, low, high))
    return pd.DataFrame(out, columns=["target", "pool", "measure", "pool_size", "n_questions",
                                      "gap", "ci_low", "ci_high"])


COMPLETE = f"Complete@{mr.COMPLETE_K}"


def nudged_means(scenario: mr.Scenario, run: dict, nudge: float = 0.0) -> pd.Series:
    """Mean of each measure after moving every query's references by `nudge`: +TIE_NUDGE
    puts them first among documents of equal score, -TIE_NUDGE last, and nothing else moves."""
    moved = {qid: {d: s + (nudge if d in scenario.qrels[qid] else 0.0) for d, s in docs.items()}
             for qid, docs in run.items()}
    return mr.evaluate_scenario(scenario, moved).groupby("measure")["value"].mean()


def centred(paragraph_emb: dict) -> dict:
    """Each language's paragraph embeddings minus their mean: q.(d - mean_L) = q.d - mean
    score of q on language L, so ranks no longer carry a per-language offset."""
    return {lang: vecs - vecs.mean(axis=0, keepdims=True) for lang, vecs in paragraph_emb.items()}


def token_lengths(tokenizer, texts) -> np.ndarray:
    enc = tokenizer(["passage: " + t for t in texts], add_special_tokens=True, truncation=False)
    return np.array([len(ids) for ids in enc["input_ids"]])


def outlier_factors(pair: Collection, target: str, query_emb: dict, paragraph_emb: dict,
                    tokenizer=None, english: str = ENGLISH) -> dict:
    """One row: Complete@10 (%) of English queries, Multi, under each variation, plus the
    mean score offset and the target's paragraph lengths."""
    row = {"target": target}
    for pool in mr.POOLS:
        scenario = mr.build_scenario(pair, "Multi", english, target, pool)
        run = mr.scenario_run(scenario, pair, query_emb, paragraph_emb)
        row[f"{pool} pool"] = 100 * nudged_means(scenario, run)[COMPLETE]
        if pool == "pair":
            row["pair pool, refs first in ties"] = 100 * nudged_means(scenario, run, TIE_NUDGE)[COMPLETE]
            row["pair pool, refs last in ties"] = 100 * nudged_means(scenario, run, -TIE_NUDGE)[COMPLETE]
        else:
            centred_run = mr.scenario_run(scenario, pair, query_emb, centred(paragraph_emb))
            row["paragraph pool, language offset removed"] = 100 * nudged_means(scenario, centred_run)[COMPLETE]
    cross = mr.build_scenario(pair, "Mono-Cross", english, target, "paragraph")
    cross_values = mr.evaluate_scenario(cross, mr.scenario_run(cross, pair, query_emb, paragraph_emb))
    row["Mono-Cross nDCG@1 (%)"] = 100 * float(cross_values.loc[cross_values["measure"] == "nDCG@1", "value"].mean())
    q = query_emb[english]
    en_scores, target_scores = q @ paragraph_emb[english].T, q @ paragraph_emb[target].T
    offset = en_scores.mean(axis=1) - target_scores.mean(axis=1)
    spread = target_scores.std(axis=1)
    row["score offset (en - target docs)"] = float(offset.mean())
    row["target score SD"] = float(spread.mean())
    row["offset in target SDs"] = float((offset / spread).mean())
    if tokenizer is not None:
        lengths = token_lengths(tokenizer, pair.docs(target)["text"])
        row["paragraph tokens (median)"] = float(np.median(lengths))
        row[f"paragraphs over {E5_MAX_TOKENS} tokens (%)"] = 100 * float((lengths > E5_MAX_TOKENS).mean())
    return row
