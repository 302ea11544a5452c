"""Dense top-k search over normalised embeddings, returning run dicts.

Exact search is a torch matrix product, chunked over queries; above
`FAISS_MIN_DOCS` documents (or on request) a flat inner-product faiss index does the
same exactly, on the GPU where faiss-gpu is installed. Ties keep the lower document
index first (a stable sort), so runs are deterministic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FAISS_MIN_DOCS = 1_000_000


def topk_torch(queries: np.ndarray, docs: np.ndarray, k: int, chunk: int = 4096):
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    d = torch.from_numpy(np.ascontiguousarray(docs)).to(device)
    k = min(k, len(docs))
    scores, idx = [], []
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(np.ascontiguousarray(queries[start:start + chunk])).to(device)
        s = q @ d.T
        order = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
        scores.append(torch.gather(s, 1, order).cpu().numpy())
        idx.append(order.cpu().numpy())
    return np.concatenate(scores), np.concatenate(idx)


def topk_faiss(queries: np.ndarray, docs: np.ndarray, k: int):
    import faiss
    index = faiss.IndexFlatIP(docs.shape[1])
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(np.ascontiguousarray(docs, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(docs)))


def search(queries: np.ndarray, docs: np.ndarray, query_ids, doc_ids, k: int = 100,
           backend: str = "auto") -> dict[str, dict[str, float]]:
    """Top-k run {query_id: {doc_id: score}} by inner product."""
    if backend == "auto":
        backend = "faiss" if len(docs) >= FAISS_MIN_DOCS else "torch"
    scores, idx = (topk_faiss if backend == "faiss" else topk_torch)(queries, docs, k)
    doc_ids = np.asarray(doc_ids)
    return {qid: {str(doc_ids[j]): float(s) for j, s in zip(row_idx, row_scores) if j >= 0}
            for qid, row_idx, row_scores in zip(query_ids, idx, scores)}


def write_trec_run(run: dict, path, tag: str = "gradedrel") -> None:
    """TREC run file: `qid Q0 docid rank score tag`, ranks from 1 in the order the metrics
    use (metrics.rank_documents: score descending, ties by doc id descending, trec_eval's),
    so trec_eval on the file and ir_measures on the run agree."""
    from gradedrel.retrieval.metrics import rank_documents

    lines = []
    for qid, docs in run.items():
        lines += [f"{qid} Q0 {did} {r} {docs[did]:.6f} {tag}"
                  for r, did in enumerate(rank_documents(docs), 1)]
    Path(path).write_text("\n".join(lines) + "\n")


def read_trec_run(path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 6:
            raise ValueError(f"{path}:{n}: expected 6 fields 'qid Q0 docid rank score tag'")
        run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run
