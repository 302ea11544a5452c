"""Encoding cache and the language-pair evaluation, with the real model on real XQuAD."""
import numpy as np
import pytest
from conftest import needs_xquad

from gradedrel.config import profile_config
from gradedrel.data.load import load_collection
from gradedrel.retrieval import encode as encode_mod
from gradedrel.retrieval.evaluate import evaluate_pairs, mean_table, pair_matrix

pytestmark = [pytest.mark.integration, needs_xquad]


def test_cache_returns_stored_embeddings(tmp_path, monkeypatch, me5_small):
    monkeypatch.setattr(encode_mod, "EMBEDDING_CACHE", tmp_path)
    texts = ["Der Rhein ist ein Fluss.", "The Rhine is a river in Europe."]
    first = encode_mod.encode(me5_small, texts, "passage", show_progress=False)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    encode_fn = me5_small.encode
    monkeypatch.setattr(me5_small, "encode", lambda *a, **k: pytest.fail("cache missed"))
    np.testing.assert_array_equal(encode_mod.encode(me5_small, texts, "passage"), first)
    monkeypatch.setattr(me5_small, "encode", encode_fn)
    other = encode_mod.encode(me5_small, texts, "query", show_progress=False)
    assert len(list(tmp_path.glob("*.npy"))) == 2 and not np.allclose(other, first)


def test_smoke_profile_pairs(me5_small):
    cfg = profile_config("smoke")
    coll = load_collection(cfg)
    assert coll.languages == ["de", "en"]
    assert coll.corpus["group"].nunique() == 4
    assert len(coll.topics("en")) == len(coll.topics("de")) == 40
    per_query = evaluate_pairs(me5_small, coll, k=cfg["top_k"], batch_size=cfg["batch_size"])
    means = mean_table(per_query)
    assert len(means) == 4 and set(per_query["measure"]) == {"nDCG@10", "RR@10", "R@100", "nDCG@1"}
    matrix = pair_matrix(per_query)
    # a small pool of 20 paragraphs: zero-shot me5-small is far above chance on every pair
    assert (matrix.values > 0.8).all()
    assert per_query.groupby(["query_lang", "doc_lang", "measure"]).size().eq(40).all()


def test_profiles():
    assert profile_config("xquad")["langs"][0] == "ar" and len(profile_config("xquad")["langs"]) == 12
    assert profile_config("smoke", max_queries=5)["max_queries"] == 5
    with pytest.raises(ValueError, match="unknown profile"):
        profile_config("nope")
    with pytest.raises(ValueError, match="no keys"):
        profile_config("smoke", learning_rate=1)
