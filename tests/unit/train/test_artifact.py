"""Model artifacts (train/artifact.py): provenance with the weights hash, a base path that is not a
model."""

import json

import pytest

from selftaught.store import is_complete
from train.artifact import read_provenance, weights_hash, write_provenance


def test_provenance_records_weights_hash(tiny_model_dir, tmp_path):
    import shutil

    art = tmp_path / "art"
    shutil.copytree(tiny_model_dir, art / "model")
    assert not is_complete(art)
    rec = write_provenance(art, policy_id="r001", parent={"policy_id": "base"})
    assert is_complete(art) and read_provenance(art) == json.loads((art / "provenance.json").read_text())
    assert rec["weights_hash"] == weights_hash(art)


def test_base_model_path_that_is_not_a_model(tmp_path):
    from synth.backends import BackendError, HFBackend
    from train.artifact import copy_model

    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ValueError, match="is not a loadable model directory or hub id"):
        copy_model(tmp_path / "notamodel", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(BackendError, match="notamodel is not a loadable model directory"):
        HFBackend(str(tmp_path / "notamodel"))
