"""The bundled presets (pipelines/presets/): each is a valid config and sets what defines its recipe."""

import pytest

from selftaught.config import load_config
from tests.helpers import ROOT

PRESETS = sorted((ROOT / "pipelines" / "presets").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_is_a_valid_config(path):
    assert load_config(path).name == path.stem


def test_recipe_presets_set_what_defines_them():
    rest, rft = load_config(ROOT / "pipelines/presets/rest_em.yaml"), load_config(ROOT / "pipelines/presets/rft.yaml")
    assert rest.training.init == "base" and not rest.selection.accumulate and rest.selection.max_per_prompt == 4
    assert rft.selection.dedup == "reasoning" and rft.selection.max_per_prompt == 4
