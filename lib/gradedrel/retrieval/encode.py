"""Batched encoding with an on-disk cache of embeddings.

SentenceTransformer.encode already sorts each call's texts by length so batches carry
little padding, and shows a tqdm bar; we add bf16 autocast on CUDA and a cache keyed by
(model id, prompt, texts, maximum length) and by what produced the embeddings (this
module's ENCODE_VERSION, the sentence-transformers / transformers / torch versions, the
precision), so a corpus is encoded once per model and a changed producer never reads a
stale file.
"""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np

from gradedrel.paths import CACHE_DIR, written_aside
from gradedrel.producers import producer

EMBEDDING_CACHE = CACHE_DIR / "embeddings"
# bump when `encode` changes what it stores (pooling, normalisation, dtype, autocast)
ENCODE_VERSION = 2
ENCODE_PACKAGES = ("sentence-transformers", "transformers", "torch")


def encode_producer(device_type: str = "cpu") -> str:
    """What writes an embedding file: this code, its libraries, and the precision (bf16
    autocast on CUDA gives other numbers than fp32 on the CPU)."""
    precision = "bf16-autocast" if device_type == "cuda" else "fp32"
    return f"{producer('encode', ENCODE_VERSION, ENCODE_PACKAGES)} {precision}"


def cache_key(model_id: str, prompt_name: str, texts, max_seq_length=None,
              made_by: str | None = None) -> str:
    """The embedding file's key: the model, prompt, maximum length and texts, and
    `made_by` (default: `encode_producer()` on the CPU)."""
    made_by = encode_producer() if made_by is None else made_by
    h = hashlib.sha256(f"{model_id}\0{prompt_name}\0{max_seq_length}\0{made_by}\0".encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:32]


def _autocast(model):
    import torch
    if model.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def encode(model, texts, prompt_name: str, batch_size: int = 64, cache: bool = True,
           show_progress: bool | None = None) -> np.ndarray:
    """L2-normalised float32 embeddings of `texts` under the model's prompt `prompt_name`
    ("query" or "passage"). `show_progress=None` leaves the bar to sentence-transformers
    (shown at INFO logging), so rendered notebooks stay clean."""
    texts = list(texts)
    model_id = getattr(model, "model_id", None)
    path = None
    if cache and model_id:
        key = cache_key(model_id, prompt_name, texts, getattr(model, "max_seq_length", None),
                        encode_producer(model.device.type))
        path = EMBEDDING_CACHE / f"{key}.npy"
        if path.exists():
            return np.load(path)
    with _autocast(model):
        emb = model.encode(texts, prompt_name=prompt_name, batch_size=batch_size,
                           normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=show_progress)
    emb = np.asarray(emb, dtype=np.float32)
    if path is not None:
        with written_aside(path, suffix=".npy") as part:
            np.save(part, emb)
    return emb
