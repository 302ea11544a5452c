"""Notebooks 03-05's claims as rows (gradedrel.claims), from the sweep's stored per-query
metrics: each point as the mean of its seeds with the q that belongs to that estimate,
contrasts per question (a question is one unit across languages: XQuAD's questions are
translations), and the claims rows of the threshold sweep (03), the mixtures (04) and the
cross-lingual tables (05).

Takes a `SweepSetup` (its store) and the tables sweeps.analysis made; gives DataFrames of
points and lists of claims rows for gradedrel.claims.claims_table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradedrel import claims
from gradedrel.retrieval.metrics import paired_test
from gradedrel.sweeps.analysis import ALPHA, bh_q_values, difference_interval
from gradedrel.sweeps.grid import BASELINE, SweepSetup

POINT_KEYS = ["annotator", "target", "tau", "size_value"]


class PerQuery:
    """Per-query values of stored runs, one (query language, corpus language) pair at a
    time, read once per run."""

    def __init__(self, setup: SweepSetup, measure: str = "nDCG@10"):
        self.setup, self.measure, self.cache = setup, measure, {}

    def values(self, config_hash: str, q_lang: str, d_lang: str | None = None) -> pd.Series | None:
        if config_hash not in self.cache:
            if not self.setup.store.is_finished(config_hash):
                self.cache[config_hash] = None
            else:
                pq = self.setup.store.per_query(config_hash)
                pq = pq[pq["measure"] == self.measure]
                self.cache[config_hash] = {k: g.set_index("query_id")["value"].astype(float)
                                           for k, g in pq.groupby(["query_lang", "doc_lang"])}
        found = self.cache[config_hash]
        return None if found is None else found.get((q_lang, d_lang or q_lang))

    def seed_mean(self, hashes, q_lang: str, d_lang: str | None = None) -> pd.Series | None:
        """Per query, the mean over the runs (seeds) that have the pair."""
        series = [s for s in (self.values(h, q_lang, d_lang) for h in hashes) if s is not None]
        return pd.concat(series, axis=1).mean(axis=1) if series else None

    def baseline(self, q_lang: str, d_lang: str | None = None) -> pd.Series | None:
        return self.values(self.setup.config_hash(BASELINE), q_lang, d_lang)


def question_key(index: pd.Index) -> pd.Index:
    """'en:5729...' -> '5729...': the same question in every language."""
    return index.str.split(":", n=1).str[-1]


def seed_mean_points(pq: PerQuery, points: pd.DataFrame, method: str = "t") -> pd.DataFrame:
    """One row per (annotator, target, tau, size) point of compare_to_reference's `points`
    (target pair): per question the mean over the point's seeds, against the baseline on
    the same questions (paired test, two-sided; 95% t-interval), BH q over these rows:
    the estimate the figure plots, with the q that belongs to it."""
    rows = []
    for keys, g in points.groupby(POINT_KEYS):
        lang = keys[1]
        mine, base = pq.seed_mean(g["config_hash"].unique(), lang), pq.baseline(lang)
        if mine is None or base is None:
            continue
        test = paired_test(mine, base, method=method)
        low, high = difference_interval(mine, base)
        rows.append({**dict(zip(POINT_KEYS, keys)), "seeds": int(g["seed"].nunique()),
                     "mean": float(mine.mean()), "reference": float(base.reindex(mine.index).mean()),
                     "delta": test.mean_difference, "ci_low": low, "ci_high": high,
                     "p_value": test.p_value, "n_queries": test.n_queries,
                     "positives": float(g["n_positives"].mean()), "steps": float(g["steps"].mean())})
    out = pd.DataFrame(rows)
    if len(out):
        out["q_value"] = bh_q_values(out["p_value"].fillna(1.0).to_numpy())
        out["significant"] = out["q_value"] < ALPHA
    return out


def question_contrast(pq: PerQuery, parts) -> pd.Series:
    """Per question, the mean over `parts` of a difference of per-query values: each part
    is (query language, corpus language, runs a, runs b), runs b None for the baseline,
    each side the mean of its runs (seeds). Questions are matched across languages."""
    diffs = []
    for q_lang, d_lang, runs_a, runs_b in parts:
        a = pq.seed_mean(runs_a, q_lang, d_lang)
        b = pq.baseline(q_lang, d_lang) if runs_b is None else pq.seed_mean(runs_b, q_lang, d_lang)
        if a is None or b is None:
            continue
        d = (a - b.reindex(a.index)).dropna()
        diffs.append(d.set_axis(question_key(d.index)))
    return pd.concat(diffs, axis=1).mean(axis=1) if diffs else pd.Series(dtype=float)


def contrast_row(claim: str, test: str, diffs: pd.Series, direction: int, **extra) -> dict:
    """A claims row from per-question differences: the mean, its t-interval and p."""
    m = claims.mean_test(diffs)
    return claims.row(claim, test, m["n"], m["effect"], m["ci_low"], m["ci_high"], m["p"],
                      direction=direction, **extra)


def _hashes(points: pd.DataFrame, **where) -> dict[str, list[str]]:
    """target -> the config hashes of the points matching `where` (column == value)."""
    sel = points
    for column, value in where.items():
        sel = sel[sel[column] == value]
    return {t: g["config_hash"].unique().tolist() for t, g in sel.groupby("target")}


# --- 03: threshold x size ----------------------------------------------------------------

def threshold_claims(pq: PerQuery, points: pd.DataFrame, tests: pd.DataFrame,
                     low_resource=("ar",), high_resource=("en", "es", "ru")) -> list[dict]:
    """The paper's monolingual findings (Figure 5) as claims rows, each a per-question
    contrast averaged over the languages it concerns (seed means), plus the "never reaches
    the baseline" claim as an intersection-union test per curve."""
    smallest, largest = points["size_value"].min(), points["size_value"].max()
    langs = sorted(points["target"].unique())
    per_q = "paired t over questions, the difference averaged per question over"
    rows = []
    small = [(lang, lang, hs, None) for tau in sorted(points["tau"].unique())
             for lang, hs in _hashes(points, tau=tau, size_value=smallest).items()]
    below = tests[(tests["size_value"] == smallest) & tests["significant"] & (tests["delta"] < 0)]
    n_small = int((tests["size_value"] == smallest).sum())
    rows.append(contrast_row(
        f"Small training sets ({smallest} instances) fall below the baseline "
        f"({len(below)} of {n_small} points significantly, BH over the {len(tests)} points)",
        f"{per_q} {len(small)} (language, τ) points, seed means", question_contrast(pq, small), -1))
    for tau in sorted(points["tau"].unique()):
        parts = [(lang, lang, hs, None) for lang, hs in _hashes(points, tau=tau, size_value=largest).items()]
        direction = 1 if tau == points["tau"].max() else -1
        verb = "beats" if direction > 0 else "falls below"
        rows.append(contrast_row(f"τ={tau} at {largest} instances {verb} the baseline",
                                 f"{per_q} {len(parts)} languages", question_contrast(pq, parts), direction))
    at_largest = tests[tests["size_value"] == largest]
    best = at_largest.loc[at_largest.groupby("target")["mean"].idxmax()].set_index("target")["tau"]
    second = (at_largest[~at_largest.set_index(["target", "tau"]).index.isin(list(best.items()))]
              .pipe(lambda t: t.loc[t.groupby("target")["mean"].idxmax()]).set_index("target")["tau"])
    parts = [(lang, lang, _hashes(points, tau=best[lang], size_value=largest)[lang],
              _hashes(points, tau=second[lang], size_value=largest)[lang]) for lang in best.index]
    rows.append(contrast_row(f"The best τ at {largest} instances "
                             f"({', '.join(f'{lang} τ={best[lang]}' for lang in best.index)}) beats the "
                             "second best", f"{per_q} {len(parts)} languages", question_contrast(pq, parts), 1))
    for group, prefers_low in ((low_resource, True), (high_resource, False)):
        group = [lang for lang in group if lang in langs]
        parts = []
        for lang in group:
            means = at_largest[at_largest["target"] == lang].set_index("tau")["mean"]
            if len(means) < 2 or 1 not in means.index:
                continue
            other = means.drop(index=1).idxmax()          # the best of the other taus
            low_h = _hashes(points, tau=1, size_value=largest)[lang]
            other_h = _hashes(points, tau=other, size_value=largest)[lang]
            parts.append((lang, lang, low_h, other_h) if prefers_low else (lang, lang, other_h, low_h))
        if not parts:
            continue
        claim = (f"Lower-resource {', '.join(group)} prefer{'s' if len(group) == 1 else ''} τ=1 (the paper's rule): "
                 "τ=1 beats the best other τ" if prefers_low else
                 f"Higher-resource {', '.join(group)} prefer τ>1 (the paper's rule): the best τ>1 beats τ=1")
        rows.append(contrast_row(f"{claim} at {largest} instances", f"{per_q} {len(parts)} language(s)",
                                 question_contrast(pq, parts), 1))
    curves = []
    for (lang, tau), g in tests.groupby(["target", "tau"]):
        p = claims.all_of(g["p_value"]) if (g["delta"] < 0).all() else 1.0
        closest = g.loc[g["delta"].idxmax()]
        curves.append({"curve": f"{lang} τ={tau}", "p": p, "row": closest})
    q = bh_q_values(np.array([c["p"] for c in curves]))
    k = int((q < ALPHA).sum())
    top = int(np.argmin(q))
    c = curves[top]["row"]
    rows.append(claims.row(
        f"A poorly chosen τ never reaches the baseline ({k} of {len(curves)} curves below it significantly "
        f"at every size; closest: {curves[top]['curve']})",
        "per curve, the largest p over its sizes (intersection-union; 1 where a point is above); "
        "effect: that curve's point closest to the baseline", int(c["n_queries"]), float(c["delta"]),
        float(c["ci_low"]), float(c["ci_high"]), float(curves[top]["p"]),
        f"BH over the {len(curves)} curves", float(q[top]), direction=-1))
    return rows


def least_harmful(best: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """best_tau's table with `label`: "best" where that point is significantly above the
    baseline (seed-mean q < 0.05), else "least harmful" (nothing beats the baseline)."""
    largest = tests.loc[tests.groupby(["annotator", "target", "tau"])["size_value"].idxmax()]
    key = largest.set_index(["annotator", "target", "tau"])
    rows = best.copy()
    ok = [bool(key.loc[(r.annotator, r.target, r.best_tau), "significant"]
               and key.loc[(r.annotator, r.target, r.best_tau), "delta"] > 0) for r in best.itertuples()]
    rows["label"] = np.where(ok, "best", "least harmful")
    return rows


# --- 04: mixtures --------------------------------------------------------------------------

def agreement_row(claim: str, same_sign: pd.Series, units: str) -> dict:
    """"Our changes have the paper's sign": effect = the share of cells that agree minus a
    half, two-sided sign test over the cells (which share queries and models: the cells are
    not independent, so this p is if anything too small)."""
    n, k = len(same_sign), int(same_sign.sum())
    return claims.row(f"{claim} ({k} of {n} {units}; effect: share − 1/2)",
                      "two-sided sign test over the cells (not independent: they share models and questions)",
                      n, k / n - 0.5 if n else np.nan, p=claims.sign_test(k, n))


def mixture_claims(pq: PerQuery, setup: SweepSetup, specs, table: pd.DataFrame,
                   vs_paper: pd.DataFrame | None = None, variant: str = "disjoint") -> list[dict]:
    """Notebook 04's claims as rows: each a per-question contrast averaged over the mixtures
    it concerns (`variant` articles; seed 0): mixtures against the target alone, against the
    same amount of target-language data (notebook 03's target-only run of twice the size,
    where the store has it), the paper's per-target findings, same against disjoint
    articles; and whether our changes have the paper's sign."""
    from gradedrel.sweeps.grid import RunSpec, mixture_variant
    h = setup.config_hash
    alone = {(s.target, s.tau): s for s in specs if len(s.train_langs) == 1}
    mixes = [s for s in specs if len(s.train_langs) == 2 and (s.target, s.tau) in alone]
    chosen = [s for s in mixes if mixture_variant(s) == variant]
    per_q = "paired t over questions, the difference averaged per question over"

    def parts(selected, reference):
        return [(s.target, s.target, [h(s)], [h(reference(s))] if reference(s) is not None else None)
                for s in selected]

    def vs_alone(s):
        return alone[(s.target, s.tau)]

    rows = []
    for tau in sorted({s.tau for s in chosen}):
        sel = [s for s in chosen if s.tau == tau]
        rows.append(contrast_row(f"Adding another language at τ={tau} lowers the target ({variant} articles)",
                                 f"{per_q} the {len(sel)} mixtures", question_contrast(pq, parts(sel, vs_alone)), -1))
    for tau in sorted({s.tau for s in chosen}):
        sel = [s for s in chosen if s.tau == tau]
        control = {s: RunSpec((s.target,), s.tau, 2 * s.size, s.size_reading, 0, s.annotator, s.hard_negatives)
                   for s in sel if isinstance(s.size, int)}
        have = [s for s in sel if s in control and setup.store.is_finished(h(control[s]))]
        claim = (f"At τ={tau} a mixture lowers the target more than the same amount of target-language "
                 "data does")
        if not have:
            rows.append(claims.untestable(claim, "no target-only run of the mixture's size in the store "
                                                 "(it needs new training)"))
            continue
        rows.append(contrast_row(
            claim, f"{per_q} {len(have)} mixtures, each against notebook 03's target-only run of "
            f"{2 * have[0].size} instances (seed 0; drawn from all training articles, the mixture's "
            "target rows from half A)", question_contrast(pq, parts(have, lambda s: control[s])), -1))
    paper = [("ar", None, None, -1, "Arabic loses from any addition (the paper)"),
             ("ru", ("es", "en"), None, 1, "Russian gains from high-resource additions at every τ (the paper)"),
             ("es", ("ar",), 1, 1, "Spanish gains from a low-resource addition at τ=1 (the paper)")]
    for target, added, tau, direction, claim in paper:
        sel = [s for s in chosen if s.target == target and (added is None or s.train_langs[1] in added)
               and (tau is None or s.tau == tau)]
        if sel:
            rows.append(contrast_row(claim, f"{per_q} {len(sel)} mixtures", question_contrast(pq, parts(sel, vs_alone)),
                                     direction))
    taus = sorted({s.tau for s in chosen})
    ar = [s for s in chosen if s.target == "ar"]
    if len(taus) >= 2 and ar:
        high, low = max(taus), min(taus)
        d_high = question_contrast(pq, parts([s for s in ar if s.tau == high], vs_alone))
        d_low = question_contrast(pq, parts([s for s in ar if s.tau == low], vs_alone))
        rows.append(contrast_row(f"Arabic loses more at higher τ (the paper): its change at τ={high} minus "
                                 f"at τ={low}", f"{per_q} ar's additions, τ={high} minus τ={low}",
                                 (d_high - d_low).dropna(), -1))
    same = {(s.target, s.train_langs[1], s.tau): s for s in mixes if mixture_variant(s) == "same"}
    pairs_ = [(s.target, s.target, [h(same[key])], [h(s)]) for s in mixes if mixture_variant(s) == "disjoint"
              for key in [(s.target, s.train_langs[1], s.tau)] if key in same]
    if pairs_:
        rows.append(contrast_row("Parallel content helps: adding the target's own articles in another language "
                                 "beats adding other articles", f"{per_q} {len(pairs_)} (target, added, τ), "
                                 "same minus disjoint", question_contrast(pq, pairs_), 1))
    if vs_paper is not None and len(vs_paper):
        rows.append(agreement_row("Our mixture changes have the paper's sign", vs_paper["same_sign"],
                                  "shared cells"))
    return rows


# --- 05: cross-lingual ----------------------------------------------------------------------

def crosslingual_claims(pq: PerQuery, points: pd.DataFrame, versus: pd.DataFrame, rel: pd.DataFrame,
                        both: pd.DataFrame | None = None, pooled: PerQuery | None = None,
                        pooled_doc: str | None = None, low: int = 1, high: int = 3) -> list[dict]:
    """Notebook 05's claims as rows. `points`: crosslingual_points (every pair, against the
    baseline); `versus`: the tau=`high` models against the tau=`low` ones on their own query
    language's pairs; `rel`: the relative-change table; `both`: compare_table2 (the cells
    shared with the paper); `pooled`/`pooled_doc`: the per-query AP@20 of the pooled view."""
    own = points[points["target"] == points["query_lang"]]
    runs = {key: g["config_hash"].unique().tolist() for key, g in own.groupby(["target", "tau"])}
    langs = sorted({t for t, _ in runs})
    cross = own[own["query_lang"] != own["doc_lang"]].drop_duplicates(["query_lang", "doc_lang"])
    cells = rel.stack().dropna()
    rows = [claims.row(f"τ={high} beats τ={low} on every (query, corpus) pair of these {len(langs)} models "
                       f"({int((cells > 0).sum())} of {len(cells)} cells; effect: mean relative change, %)",
                       f"paired t over questions per cell; p: the largest of the {len(versus)} cells' "
                       "(intersection-union)", len(cells), float(cells.mean()), p=claims.all_of(versus["p_value"]))]
    per_model = cells.groupby(level=0).mean()
    rows.append(claims.row(f"τ={high} beats τ={low} as a rule across training languages ({len(per_model)} models, "
                           "one seed each; effect: mean relative change, %)",
                           "two-sided sign test over the models' mean relative change", len(per_model),
                           float(per_model.mean()), p=claims.sign_test(int((per_model > 0).sum()), len(per_model))))
    for tau, direction, verb in ((high, 1, "beat"), (low, -1, "fall below")):
        parts = [(r.query_lang, r.doc_lang, runs[(r.query_lang, tau)], None) for r in cross.itertuples()
                 if (r.query_lang, tau) in runs]
        rows.append(contrast_row(f"τ={tau} models {verb} the baseline on cross-lingual pairs",
                                 f"paired t over questions, the difference averaged per question over the "
                                 f"{len(parts)} cross-lingual pairs", question_contrast(pq, parts), direction))
    if pooled is not None and pooled_doc is not None:
        parts = [(lang, pooled_doc, runs[(lang, high)], runs[(lang, low)]) for lang in langs
                 if (lang, high) in runs and (lang, low) in runs]
        rows.append(contrast_row(f"τ={high} beats τ={low} on the pooled 11-language sentences (mAP@20)",
                                 f"paired t over questions, averaged over the {len(parts)} query languages",
                                 question_contrast(pooled, parts), 1))
    if both is not None and len(both):
        rows.append(agreement_row(f"Our τ={low} → τ={high} change has the paper's sign on the cells both tables "
                                  f"have (mean ours {both['ours_pct'].mean():+.2f}%, the paper's "
                                  f"{both['paper_pct'].mean():+.2f}%)", both["same_sign"], "cells"))
    return rows
