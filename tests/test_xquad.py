import shutil

import pytest
from conftest import needs_xquad

from gradedrel.data import verified_files, xquad
from gradedrel.data.split import split_collection


def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "xquad.en.json").write_text('{"data": []}')
    monkeypatch.setenv("XQUAD_DIR", str(tmp_path))
    with pytest.raises(xquad.ChecksumError, match="does not match"):
        xquad.xquad_file("en")


def test_unknown_language():
    with pytest.raises(ValueError, match="no language 'fi'"):
        xquad.xquad_file("fi")


@needs_xquad
def test_download_is_verified_then_cached(tmp_path, monkeypatch):
    source = xquad.xquad_file("en")
    fetched = []

    def fake_urlretrieve(url, dest):      # the network is not reachable from tests
        fetched.append(url)
        shutil.copy(source, dest)

    monkeypatch.delenv("XQUAD_DIR", raising=False)
    monkeypatch.setattr(xquad, "DATA_DIR", tmp_path)
    monkeypatch.setattr(verified_files.urllib.request, "urlretrieve", fake_urlretrieve)
    path = xquad.xquad_file("en")
    assert path == tmp_path / "xquad" / "xquad.en.json"
    assert fetched == [xquad.URL.format(lang="en")]
    xquad.xquad_file("en")
    assert len(fetched) == 1


@needs_xquad
@pytest.mark.integration
def test_real_xquad_shape(xquad_all):
    c = xquad_all
    assert c.languages == sorted(xquad.LANGS)
    assert len(c.corpus) == 12 * 240 and len(c.queries) == 12 * 1190
    assert (c.qrels["grade"] == 3).all() and len(c.qrels) == 12 * 1190
    assert c.corpus["group"].nunique() == 48
    en, th = c.qrels_dict("en", "en"), c.qrels_dict("en", "th")
    q = next(iter(en))
    assert next(iter(en[q])).split(":")[1] == next(iter(th[q])).split(":")[1]
    assert (c.corpus["text"] == c.corpus["text"].str.strip()).all()


@needs_xquad
@pytest.mark.integration
def test_real_xquad_split(xquad_all):
    parts = split_collection(xquad_all)
    assert parts["train"].corpus["group"].nunique() == 36
    assert parts["test"].corpus["group"].nunique() == 12
    assert len(parts["train"].queries) + len(parts["test"].queries) == len(xquad_all.queries)
