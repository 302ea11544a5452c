"""Notebook 05's LAReQA view (sweeps/pooled_view.py): per base question, the monolingual,
cross-lingual and pooled values averaged over languages, the paired change against the
baseline, and the check that the two studies' zero-shot rows agree."""
import numpy as np
import pandas as pd
import pytest

from gradedrel.sweeps import pooled_view as pv
from gradedrel.sweeps.grid import RunSpec
from gradedrel.sweeps.run_store import RunStore

LANGS = ["en", "de"]
QUESTIONS = ["q1", "q2", "q3"]


class _Setup:
    """What PerQuery reads of a SweepSetup: a store and a hash per spec."""

    def __init__(self, store):
        self.store = store

    def config_hash(self, spec):
        return "base" if spec.is_baseline else f"{spec.target}{spec.tau}"


def _per_query(rr: dict, ap: dict) -> pd.DataFrame:
    """rr[(q_lang, d_lang)] and ap[q_lang]: lists of values for q1..q3."""
    rows = [(q, d, f"{q}:{qid}", "RR@10", v) for (q, d), vals in rr.items() for qid, v in zip(QUESTIONS, vals)]
    rows += [(q, "pooled", f"{q}:{qid}", "AP@20", v) for q, vals in ap.items() for qid, v in zip(QUESTIONS, vals)]
    return pd.DataFrame(rows, columns=["query_lang", "doc_lang", "query_id", "measure", "value"])


def _store(tmp_path, shift: float) -> _Setup:
    store = RunStore(tmp_path / "store")
    base_rr = {("en", "en"): [1, 0.5, 1], ("de", "de"): [1, 1, 0.5],
               ("en", "de"): [0.5, 0.5, 0.25], ("de", "en"): [0.25, 0.5, 0.5]}
    base_ap = {"en": [0.2, 0.4, 0.6], "de": [0.4, 0.2, 0.0]}
    store.write_finished({"config_hash": "base"}, _per_query(base_rr, base_ap))
    tuned_ap = {lang: [v + shift + 0.01 * i for i, v in enumerate(vals)] for lang, vals in base_ap.items()}
    store.write_finished({"config_hash": "en3"}, _per_query(base_rr, tuned_ap))
    return _Setup(store)


def test_question_means_average_each_setting_over_its_languages(tmp_path):
    setup = _store(tmp_path, 0.1)
    pq = {m: pv.PerQuery(setup, m) for m in ("RR@10", "AP@20")}
    means = pv.question_means(pq, "base", LANGS)
    assert means["X-X RR@10"].to_dict() == pytest.approx({"q1": 1.0, "q2": 0.75, "q3": 0.75})
    assert means["X-Y RR@10"].to_dict() == pytest.approx({"q1": 0.375, "q2": 0.5, "q3": 0.375})
    assert means["pooled mAP@20"].to_dict() == pytest.approx({"q1": 0.3, "q2": 0.3, "q3": 0.3})
    assert pv.question_means(pq, "base", LANGS + ["fr"]) is None        # a missing pair


def test_threshold_rows_carry_the_pooled_change_against_the_baseline(tmp_path):
    setup = _store(tmp_path, 0.1)
    table = pv.threshold_lareqa(setup, [RunSpec(("en",), 3, 100)], LANGS)
    assert table["model"].tolist() == ["zero-shot", "en τ=3"]
    tuned = table.iloc[1]
    assert tuned["pooled Δ"] == pytest.approx(0.11)                       # 0.1 + mean(0, .01, .02)
    assert tuned["pooled Δ low"] < 0.11 < tuned["pooled Δ high"]
    assert tuned["p_value"] < 0.05 and tuned["q_value"] == pytest.approx(tuned["p_value"])
    assert np.isnan(table.iloc[0]["p_value"])


def test_the_two_studies_zero_shot_rows_must_agree(tmp_path):
    table = pv.threshold_lareqa(_store(tmp_path, 0.1), [RunSpec(("en",), 3, 100)], LANGS)
    hybrid = pd.DataFrame({"model": ["zero-shot", "alpha=0.5 seed=0"], "n_questions": [3, 3],
                           "pooled mAP@20": [0.3, 0.5], "pooled mAP@20 low": [0.2, 0.4],
                           "pooled mAP@20 high": [0.4, 0.6], "language bias": [9.0, 4.0]})
    both = pv.beside_hybrid(table, hybrid)
    assert both["model"].tolist() == ["zero-shot", "alpha=0.5 seed=0", "en τ=3"]
    assert np.isnan(both.iloc[2]["language bias"])                          # not stored for 05's runs
    with pytest.raises(ValueError, match="no longer measure the same thing"):
        pv.beside_hybrid(table, hybrid.assign(**{"pooled mAP@20": [0.31, 0.5]}))
