"""The append-only logs under the stores: what a killed writer leaves is repaired on reading
and before appending; any other damage is an error that names the file and the line."""
import json
import warnings

import pytest

from gradedrel import jsonl_log
from gradedrel.jsonl_log import CorruptLogError


def records(path):
    return [r for _, r in jsonl_log.read(path)]


def test_an_append_after_a_torn_last_line_keeps_every_record(tmp_path):
    log = tmp_path / "log.jsonl"
    jsonl_log.append(log, {"k": 1})
    with open(log, "ab") as fh:
        fh.write(b'{"k": 2, "pay')                  # a writer killed mid-line
    # appended at once, with no read between: the fragment is cut first, not glued onto
    with pytest.warns(UserWarning, match=r"log.jsonl:2: dropping a torn last line \(13 bytes"):
        jsonl_log.append(log, {"k": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # nothing left to repair
        assert records(log) == [{"k": 1}, {"k": 3}]
    assert log.read_bytes().count(b"\n") == 2 and log.read_bytes().endswith(b"\n")


def test_a_torn_last_line_is_cut_on_reading_too(tmp_path):
    log = tmp_path / "log.jsonl"
    jsonl_log.append(log, {"k": 1})
    with open(log, "ab") as fh:
        fh.write(b"\x00" * 64)                       # a NUL-filled tail, no newline
    with pytest.warns(UserWarning, match="torn last line"):
        assert records(log) == [{"k": 1}]
    assert log.read_bytes() == b'{"k": 1}\n'


@pytest.mark.parametrize("damage,what", [(b"\x00" * 4, "not a JSON line"),
                                         (b"\x00" * 7, "not a JSON line"),
                                         (b'{"k": "\xff\xfe"}', "not UTF-8 text")])
def test_a_damaged_line_elsewhere_names_the_file_and_line(tmp_path, damage, what):
    log = tmp_path / "log.jsonl"
    jsonl_log.append(log, {"k": 1})
    with open(log, "ab") as fh:
        fh.write(damage + b"\n")
    jsonl_log.append(log, {"k": 3})
    with pytest.raises(CorruptLogError, match=rf"log.jsonl:2: {what}"):
        records(log)
    assert log.read_bytes().count(b"\n") == 3       # reported, never cut


def test_records_round_trip_and_required_fields(tmp_path):
    log = tmp_path / "sub" / "log.jsonl"
    assert jsonl_log.read(log) == []                 # no file: no records
    jsonl_log.append(log, {"b": "ü", "a": [1, 2]})
    assert json.loads(log.read_text(encoding="utf-8")) == {"a": [1, 2], "b": "ü"}
    assert jsonl_log.read(log, required=("a",)) == [(1, {"a": [1, 2], "b": "ü"})]
    with pytest.raises(CorruptLogError, match=r"log.jsonl:1: not a record with fields \['c'\]"):
        jsonl_log.read(log, required=("c",))
