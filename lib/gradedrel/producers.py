"""What produced a cached file, for the file's key.

Embeddings in data/cache/ and converted or pruned checkpoints in data/models/ are reused
by every later run that asks for the same thing. Their keys name, besides the inputs, the
code and the libraries that wrote them: a version constant of the writing code (bumped
when it changes what it writes) and the installed versions of the packages whose output
it stores. A changed producer then makes a new key, and a stale file is never reused.
"""
from __future__ import annotations

import hashlib
from importlib import metadata


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def producer(name: str, version: int, packages=()) -> str:
    """"NAME-vVERSION pkg==x.y ...": the writing code and the packages it depends on."""
    return " ".join([f"{name}-v{version}", *(f"{p}=={package_version(p)}" for p in packages)])


def producer_digest(name: str, version: int, packages=(), n: int = 8) -> str:
    """A short digest of `producer(...)`, for file names."""
    return hashlib.sha256(producer(name, version, packages).encode()).hexdigest()[:n]
