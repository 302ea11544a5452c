"""Data files checked against known SHA-256 sums: from a folder named by an environment
variable, else a local cache, else downloaded from their public address into the cache."""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path


class ChecksumError(RuntimeError):
    pass


def sha256_of(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verified(path: Path, expected: str) -> Path:
    got = sha256_of(path)
    if got != expected:
        raise ChecksumError(f"{path}: SHA-256 {got} does not match the published file "
                            f"({expected}); the file is corrupt or not the published release")
    return path


def fetch_verified(name: str, expected_sha256: str, env_var: str, cache_dir: Path, url: str) -> Path:
    if os.environ.get(env_var):
        path = Path(os.environ[env_var]) / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found (${env_var} is set)")
        return verified(path, expected_sha256)
    cached = Path(cache_dir) / name
    if cached.exists():
        return verified(cached, expected_sha256)
    cached.parent.mkdir(parents=True, exist_ok=True)
    part = cached.with_suffix(".part")
    urllib.request.urlretrieve(url, part)
    verified(part, expected_sha256)
    os.replace(part, cached)
    return cached
