"""paths.written_aside: a file appears under its name whole or not at all."""
import os

import pytest

from gradedrel.paths import written_aside


def test_the_file_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "sub" / "model.bin"
    with written_aside(target) as part:
        assert part.parent == target.parent and str(os.getpid()) in part.name
        part.write_bytes(b"whole")
        assert not target.exists()                     # a reader sees nothing yet
    assert target.read_bytes() == b"whole"
    assert list(target.parent.iterdir()) == [target]


def test_a_failed_write_leaves_neither_part_nor_target(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with written_aside(target, suffix=".npy") as part:
            assert part.name.endswith(".npy")
            part.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"                # the earlier file is untouched
    assert list(tmp_path.iterdir()) == [target]
