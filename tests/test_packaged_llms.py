"""GGUF models from PyPI chunk wheels: joined from the wheels' data files only, accepted only
with the recorded size, SHA-256 and GGUF header name."""
import hashlib
import zipfile

import pytest

from gradedrel.annotation import packaged_llms as pl


def tiny_gguf(path, name: str) -> bytes:
    import gguf
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path.read_bytes()


def chunk_wheels(folder, blob: bytes, n: int, name: str = "fake-model", version: str = "1.0"):
    folder.mkdir(exist_ok=True)
    size = -(-len(blob) // n)
    for i in range(n):
        module = f"fake_model_part{i + 1}"
        with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as z:
            z.writestr(f"{module}/__init__.py", "raise SystemExit('never imported')\n")
            z.writestr(f"{module}/data/part{i + 1:02d}.bin", blob[i * size:(i + 1) * size])
    return tuple(f"{name}-part{i + 1}=={version}" for i in range(n))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    blob = tiny_gguf(tmp_path / "whole.gguf", "Tiny Test Model")
    packages = chunk_wheels(tmp_path / "wheels", blob, 3)
    model = pl.PackagedGGUF("tiny", packages, len(blob), hashlib.sha256(blob).hexdigest(),
                            "Tiny Test Model", "chatml")
    monkeypatch.setitem(pl.PACKAGED_LLMS, "tiny", model)
    return tmp_path, blob, model


def test_chunks_join_in_part_order_and_are_verified(fake):
    tmp, blob, _ = fake
    path = pl.packaged_gguf("tiny", wheels=tmp / "wheels", models=tmp / "models")
    assert path.read_bytes() == blob and pl.header_name(path) == "Tiny Test Model"
    assert pl.packaged_gguf("tiny", wheels=tmp / "nowhere", models=tmp / "models") == path   # reused


def test_a_changed_package_is_refused(fake, monkeypatch):
    tmp, blob, model = fake
    monkeypatch.setitem(pl.PACKAGED_LLMS, "tiny", pl.PackagedGGUF(
        "tiny", model.packages, model.size, "0" * 64, model.header_name, "chatml"))
    with pytest.raises(pl.PackagedModelError, match="SHA-256"):
        pl.packaged_gguf("tiny", wheels=tmp / "wheels", models=tmp / "models")
    assert not (tmp / "models" / "tiny.gguf").exists() and not (tmp / "models" / "tiny.part").exists()


def test_a_file_that_names_another_model_is_refused(fake, monkeypatch):
    tmp, blob, model = fake
    monkeypatch.setitem(pl.PACKAGED_LLMS, "tiny", pl.PackagedGGUF(
        "tiny", model.packages, model.size, model.sha256, "Some Other Model", "chatml"))
    with pytest.raises(pl.PackagedModelError, match="names 'Tiny Test Model'"):
        pl.packaged_gguf("tiny", wheels=tmp / "wheels", models=tmp / "models")
