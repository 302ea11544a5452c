"""Multi-reference cross-lingual retrieval: the Max@R paper's scenarios (sections 3, 5.1)
on a parallel collection, for English + one target language, with English and
target-language queries.

Scenarios (for a query in language Lq; Lo is the other language of the pair)
  Multi       pool = both languages; 2 references: the query's document in Lq and in Lo
  Multi-1     the same pool minus the query's own Lq reference (removed for that query
              only); 1 reference, in Lo
  Mono-Same   pool = Lq only; 1 reference
  Mono-Cross  pool = Lo only; 1 reference (conventional CLIR)

Pool construction ("pair", the paper's)
  One document per question-context pair and language: a question's document is its
  paragraph's text, so a paragraph with k questions appears k times in each language.
  |D| = 2 x questions for two languages (2380 on XQuAD), and a query's references are
  its *own* pair's documents. Only this reading reproduces the paper's numbers: Table 1
  (multilingual-e5-base, XQuAD, En+Zh, Zh queries) gives Max@R 650.95 and Max@R-norm
  18.31, and 100 (log2 2380 - log2 650.95) / (log2 2380 - log2 2) = 18.31; with 240
  paragraphs a language Max@R could not pass 480. Consequence: the k copies of a
  paragraph score the same, and trec_eval's tie order (doc id descending, see
  `metrics`) decides where the query's own copy lands among them. Even a perfect
  retriever then has Max@R about k + (k+1)/2 (and misses Complete@10 when k > 5);
  `oracle_embeddings` measures that ceiling. Document ids are
  `make_id(lang, "PARAGRAPH/QUESTION")`, so ties fall in question-id order.

Pool construction ("paragraph", de-duplicated)
  The collection's corpus as it is (240 paragraphs a language on XQuAD); a query's
  references are its paragraph in each language. No ties; the same scenarios.

Runs
  Each query is scored against every paragraph of the pool's languages (`search`,
  exact torch top-k with k = the number of paragraphs), and the pair pool's copies take
  their paragraph's score, so every ranking covers the whole pool and Max@R is exact;
  copies tie exactly on any device.

Metrics (per query, tidy)
  Multi: Complete@10 (0/1), Max@R, Max@R-norm (per query, the paper's formula) via
  `metrics.evaluate_max_at_r`. One-reference scenarios: nDCG@1 and RR (reciprocal rank
  over the full ranking, no cutoff: the paper's "MRR") via `metrics.evaluate`, and
  Max@R (= the reference's rank). `summarise` adds the paper's reported Max@R-norm,
  the normalisation of the *mean* Max@R (`metrics.max_at_r_norm_of_mean`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradedrel.data.collection import Collection, make_id
from gradedrel.retrieval.metrics import evaluate, evaluate_max_at_r, max_at_r, max_at_r_norm_of_mean
from gradedrel.retrieval.search import search

ENGLISH = "en"
SCENARIOS = ("Multi", "Multi-1", "Mono-Same", "Mono-Cross")
POOLS = ("pair", "paragraph")
COMPLETE_K = 10
SINGLE_REFERENCE_MEASURES = ("nDCG@1", "RR")
PER_QUERY_COLUMNS = ["target", "pool", "scenario", "query_lang", "pool_size", "n_refs",
                     "query_id", "measure", "value"]
LOWER_IS_BETTER = ("Max@R",)


# --- the parallel structure ------------------------------------------------------------

def question_paragraphs(coll: Collection, langs) -> pd.DataFrame:
    """question (base id) -> paragraph (base id), checked to be the same in every
    language of `langs`, one relevant paragraph per question."""
    mappings = []
    for lang in langs:
        topics = coll.topics(lang)
        if topics.empty:
            raise ValueError(f"{coll.name}: no {lang!r} queries")
        if coll.docs(lang).empty:
            raise ValueError(f"{coll.name}: no {lang!r} documents")
        qrels = coll.qrels_dict(lang, lang)
        base_of_doc = coll.docs(lang).set_index("doc_id")["base_id"]
        rows = []
        for qid, qbase in zip(topics["query_id"], topics["base_id"]):
            relevant = list(qrels.get(qid, {}))
            if len(relevant) != 1:
                raise ValueError(f"{coll.name}: query {qid} has {len(relevant)} relevant "
                                 f"{lang} documents; multi-reference scenarios need exactly one")
            rows.append((qbase, base_of_doc[relevant[0]]))
        mappings.append(pd.DataFrame(rows, columns=["question", "paragraph"])
                        .sort_values("question").reset_index(drop=True))
    for lang, other in zip(langs[1:], mappings[1:]):
        if not mappings[0].equals(other):
            raise ValueError(f"{coll.name}: questions and paragraphs are not parallel "
                             f"between {langs[0]!r} and {lang!r}")
    return mappings[0]


def _corpus_ids(coll: Collection, lang: str) -> dict[str, str]:
    """paragraph base id -> the corpus document id in `lang`."""
    docs = coll.docs(lang)
    return dict(zip(docs["base_id"], docs["doc_id"]))


def pool_documents(coll: Collection, langs, pool: str = "pair") -> pd.DataFrame:
    """The pool's documents: doc_id, lang, paragraph (base id), question (base id of the
    pair; pair pool only), para_doc_id (the corpus document whose text it carries)."""
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; choose from {', '.join(POOLS)}")
    pairs = question_paragraphs(coll, langs)
    frames = []
    for lang in langs:
        corpus_id = _corpus_ids(coll, lang)
        if pool == "pair":
            frame = pairs.assign(lang=lang, doc_id=[
                _pair_doc_id(lang, q, p) for q, p in zip(pairs["question"], pairs["paragraph"])])
        else:
            docs = coll.docs(lang)
            frame = pd.DataFrame({"lang": lang, "doc_id": docs["doc_id"],
                                  "paragraph": docs["base_id"], "question": None})
        frames.append(frame.assign(para_doc_id=frame["paragraph"].map(corpus_id)))
    out = pd.concat(frames, ignore_index=True)
    return out[["doc_id", "lang", "paragraph", "question", "para_doc_id"]]


def _pair_doc_id(lang: str, question: str, paragraph: str) -> str:
    return make_id(lang, f"{paragraph}/{question}")


# --- scenarios ---------------------------------------------------------------------------

@dataclass
class Scenario:
    """One scenario for one query language: the pool, each query's references, and the
    documents removed from a query's ranking (Multi-1)."""
    name: str
    pool: str
    query_lang: str
    doc_langs: tuple[str, ...]
    documents: pd.DataFrame                  # the pool (pool_documents rows)
    qrels: dict[str, dict[str, int]]         # {query_id: {doc_id: 1}}
    excluded: dict[str, str]                 # {query_id: doc_id} removed for that query

    @property
    def pool_size(self) -> int:
        """|D| as a query sees it (Multi-1 removes one document per query)."""
        return len(self.documents) - (1 if self.excluded else 0)

    @property
    def n_refs(self) -> int:
        return 2 if self.name == "Multi" else 1


def build_scenario(coll: Collection, name: str, query_lang: str, other_lang: str,
                   pool: str = "pair") -> Scenario:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    if query_lang == other_lang:
        raise ValueError("a multi-reference pair needs two different languages")
    pair_langs = (query_lang, other_lang)
    doc_langs = {"Multi": pair_langs, "Multi-1": pair_langs,
                 "Mono-Same": (query_lang,), "Mono-Cross": (other_lang,)}[name]
    documents = pool_documents(coll, list(doc_langs), pool)
    paragraph_of = question_paragraphs(coll, list(pair_langs)).set_index("question")["paragraph"]
    corpus_id = {lang: _corpus_ids(coll, lang) for lang in pair_langs}

    def reference(lang, question, paragraph):
        if pool == "pair":
            return _pair_doc_id(lang, question, paragraph)
        return corpus_id[lang][paragraph]

    qrels, excluded = {}, {}
    topics = coll.topics(query_lang)
    for qid, qbase in zip(topics["query_id"], topics["base_id"]):
        para = paragraph_of[qbase]
        own, other = (reference(lang, qbase, para) for lang in pair_langs)
        if name == "Multi":
            qrels[qid] = {own: 1, other: 1}
        elif name == "Multi-1":
            qrels[qid] = {other: 1}
            excluded[qid] = own
        elif name == "Mono-Same":
            qrels[qid] = {own: 1}
        else:
            qrels[qid] = {other: 1}
    return Scenario(name, pool, query_lang, tuple(doc_langs), documents, qrels, excluded)


# --- runs ----------------------------------------------------------------------------------

def scenario_run(scenario: Scenario, coll: Collection, query_emb: dict, paragraph_emb: dict
                 ) -> dict[str, dict[str, float]]:
    """The full ranking of the scenario's pool for each query, {query_id: {doc_id: score}}.

    `query_emb[lang]` rows follow `coll.topics(lang)`, `paragraph_emb[lang]` rows follow
    `coll.docs(lang)` (what `encode` gives for those texts)."""
    para_ids = np.concatenate([coll.docs(l)["doc_id"].to_numpy() for l in scenario.doc_langs])
    para_vecs = np.concatenate([paragraph_emb[l] for l in scenario.doc_langs])
    topics = coll.topics(scenario.query_lang)
    q_vecs = query_emb[scenario.query_lang]
    for what, vecs, n in (("queries", q_vecs, len(topics)), ("paragraphs", para_vecs, len(para_ids))):
        if len(vecs) != n:
            raise ValueError(f"{len(vecs)} {what} embeddings for {n} {what}")
    paragraph_run = search(q_vecs, para_vecs, topics["query_id"], para_ids, k=len(para_ids))
    copies = scenario.documents.groupby("para_doc_id", sort=False)["doc_id"].apply(list).to_dict()
    run = {}
    for qid, para_scores in paragraph_run.items():
        # paragraphs without questions have no copies in the pair pool
        ranking = {doc_id: score for para, score in para_scores.items()
                   for doc_id in copies.get(para, ())}
        if qid in scenario.excluded:
            del ranking[scenario.excluded[qid]]
        run[qid] = ranking
    return run


def evaluate_scenario(scenario: Scenario, run, complete_k: int = COMPLETE_K) -> pd.DataFrame:
    """Per-query metrics of one scenario's run, tidy (query_id, measure, value)."""
    if scenario.name == "Multi":
        return evaluate_max_at_r(scenario.qrels, run, scenario.pool_size, ks=(complete_k,))
    per_query = evaluate(scenario.qrels, run, SINGLE_REFERENCE_MEASURES)
    ranks = max_at_r(scenario.qrels, run, scenario.pool_size)
    ranks = ranks.rename_axis("query_id").reset_index(name="value").assign(measure="Max@R")
    return pd.concat([per_query, ranks[per_query.columns]], ignore_index=True)


def evaluate_scenarios(coll: Collection, target: str, query_emb: dict, paragraph_emb: dict,
                       pools=POOLS, scenarios=SCENARIOS, english: str = ENGLISH) -> pd.DataFrame:
    """Every scenario x pool x query language (English, target) of the pair
    english + target, per query: columns `PER_QUERY_COLUMNS`."""
    frames = []
    for pool in pools:
        for name in scenarios:
            for q_lang, o_lang in ((english, target), (target, english)):
                scenario = build_scenario(coll, name, q_lang, o_lang, pool)
                run = scenario_run(scenario, coll, query_emb, paragraph_emb)
                frames.append(evaluate_scenario(scenario, run).assign(
                    target=target, pool=pool, scenario=name, query_lang=q_lang,
                    pool_size=scenario.pool_size, n_refs=scenario.n_refs))
    return pd.concat(frames, ignore_index=True)[PER_QUERY_COLUMNS]


def embed_pair(model, coll: Collection, langs, batch_size: int = 64, show_progress: bool = True):
    """Query and paragraph embeddings by language, aligned with coll.topics / coll.docs
    (the same texts as `retrieval.evaluate`, so the embedding cache is shared)."""
    from gradedrel.retrieval.encode import encode

    query_emb = {l: encode(model, coll.topics(l)["text"], "query", batch_size,
                           show_progress=show_progress) for l in langs}
    paragraph_emb = {l: encode(model, coll.docs(l)["text"], "passage", batch_size,
                               show_progress=show_progress) for l in langs}
    return query_emb, paragraph_emb


def evaluate_model(model, coll: Collection, target: str, batch_size: int = 64,
                   english: str = ENGLISH, **kwargs) -> pd.DataFrame:
    query_emb, paragraph_emb = embed_pair(model, coll, (english, target), batch_size)
    return evaluate_scenarios(coll, target, query_emb, paragraph_emb, english=english, **kwargs)


def oracle_embeddings(coll: Collection, langs):
    """Embeddings of a perfect retriever: every query scores 1 on each copy of its
    paragraph, in every language, and 0 elsewhere. Its metrics are the ceiling the
    pool construction and the tie order allow."""
    pairs = question_paragraphs(coll, list(langs))
    paragraphs = sorted(set(coll.docs(langs[0])["base_id"]))
    column = {p: i for i, p in enumerate(paragraphs)}
    paragraph_of = pairs.set_index("question")["paragraph"]
    eye = np.eye(len(paragraphs), dtype=np.float32)
    query_emb = {l: eye[[column[paragraph_of[b]] for b in coll.topics(l)["base_id"]]] for l in langs}
    paragraph_emb = {l: eye[[column[b] for b in coll.docs(l)["base_id"]]] for l in langs}
    return query_emb, paragraph_emb


# --- tables ------------------------------------------------------------------------------

SUMMARY_COLUMNS = {
    "Complete@10": "Complete@10 (%)",
    "Max@R": "Max@R",
    "Max@R-norm": "Max@R-norm (per-query mean)",
    "nDCG@1": "nDCG@1 (%)",
    "RR": "MRR",
}
PAPER_NORM = "Max@R-norm (paper: of mean Max@R)"


def summarise(per_query: pd.DataFrame) -> pd.DataFrame:
    """Means per (target, pool, scenario, query_lang), on the paper's scales: Complete@10
    and nDCG@1 in percent, MRR in 0-1, Max@R a mean rank; plus `PAPER_NORM`, the paper's
    reported Max@R-norm (the normalisation of the mean Max@R with the pool's |D| and |R|)."""
    keys = ["target", "pool", "scenario", "query_lang", "pool_size", "n_refs"]
    table = (per_query.groupby(keys + ["measure"], sort=False)["value"].mean()
             .unstack("measure").reset_index())
    counts = per_query.groupby(keys, sort=False)["query_id"].nunique().rename("n_queries")
    table = table.merge(counts.reset_index(), on=keys, how="left")
    percent = [c for c in table.columns if c.startswith("Complete@") or c == "nDCG@1"]
    table[percent] = 100 * table[percent]
    if "Max@R" in table:
        table[PAPER_NORM] = [
            max_at_r_norm_of_mean(m, d, r) if s == "Multi" else np.nan
            for m, d, r, s in zip(table["Max@R"], table["pool_size"], table["n_refs"], table["scenario"])]
    table = table.rename(columns=lambda c: SUMMARY_COLUMNS.get(
        c, f"{c} (%)" if c.startswith("Complete@") else c))
    metrics = [c for c in table.columns if c not in keys and c != "n_queries"]
    preferred = ["Max@R", "Max@R-norm (per-query mean)", PAPER_NORM, "nDCG@1 (%)", "MRR"]
    metrics.sort(key=lambda c: (preferred.index(c) + 1) if c in preferred else 0)
    order = keys + ["n_queries"] + metrics
    return table[order]


def language_gap(summary: pd.DataFrame, english: str = ENGLISH) -> pd.DataFrame:
    """English advantage per (target, pool, scenario) and metric: English-query value minus
    target-query value, sign flipped for Max@R (lower is better) so that a positive gap
    always favours English queries (the paper's Figure 2 reports the Max@R gap as
    target minus English, e.g. 650.95 - 53.04 = 597.9)."""
    keys = ["target", "pool", "scenario"]
    metrics = [c for c in summary.columns if c not in keys + ["query_lang", "pool_size",
                                                                "n_refs", "n_queries"]]
    en = summary[summary["query_lang"] == english].set_index(keys)[metrics]
    tgt = summary[summary["query_lang"] != english].set_index(keys)[metrics]
    gap = en - tgt
    for col in LOWER_IS_BETTER:
        if col in gap:
            gap[col] = -gap[col]
    return gap.dropna(axis=1, how="all").reset_index()
