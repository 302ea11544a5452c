import numpy as np

from gradedrel.retrieval.search import read_trec_run, search, topk_faiss, topk_torch, write_trec_run


def normalised(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_torch_and_faiss_agree():
    rng = np.random.default_rng(0)
    q, d = normalised(rng, 7), normalised(rng, 300)
    s1, i1 = topk_torch(q, d, 10, chunk=3)
    s2, i2 = topk_faiss(q, d, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)
    brute = np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(i1, brute)


def test_ties_keep_document_order_and_k_caps_at_corpus():
    q = np.array([[1.0, 0.0]], np.float32)
    d = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], np.float32)
    scores, idx = topk_torch(q, d, 10)
    assert idx.tolist() == [[1, 2, 0]] and scores.shape == (1, 3)


def test_run_dict_and_trec_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    run = search(normalised(rng, 2), normalised(rng, 5), ["q1", "q2"], list("abcde"), k=3)
    assert set(run) == {"q1", "q2"} and all(len(v) == 3 for v in run.values())
    write_trec_run(run, tmp_path / "run.trec", tag="t")
    back = read_trec_run(tmp_path / "run.trec")
    assert back.keys() == run.keys()
    for qid in run:
        assert back[qid] == {k: round(v, 6) for k, v in run[qid].items()} or \
            np.allclose(sorted(back[qid].values()), sorted(run[qid].values()), atol=1e-6)
    first = (tmp_path / "run.trec").read_text().splitlines()[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "t"


def test_trec_run_ranks_ties_as_trec_eval_does(tmp_path):
    """Equal scores: trec_eval ranks by doc id descending; the file's ranks must say so."""
    write_trec_run({"q": {"d1": 0.5, "d3": 0.5, "d2": 0.9}}, tmp_path / "run.trec")
    lines = [line.split() for line in (tmp_path / "run.trec").read_text().splitlines()]
    assert [(doc, rank) for _, _, doc, rank, _, _ in lines] == [("d2", "1"), ("d3", "2"), ("d1", "3")]
