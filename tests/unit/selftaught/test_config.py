"""Experiment configs (selftaught/config/): the demo preset and the defaults, errors that name the
key, section and round hashes, `extends:`."""

from pathlib import Path

import pytest

from pipelines.build import DEFAULT_CONFIG
from selftaught.config import ConfigError, load_config, parse_config


def test_demo_preset_is_valid_and_matches_the_defaults():
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.name == "demo" and cfg.sampling.n == 8 and cfg.task.pool == {3: 150, 4: 600, 5: 150}


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"sampling": {"temprature": 0.5}}, "sampling.temprature: unknown key"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"sampling": {"n": 0}}, "sampling.n: Input should be greater than or equal to 1"),
        ({"sampling": {"n": "eight"}}, "sampling.n"),
        ({"training": {"method": "qlora"}}, "training.method"),
        ({"training": {"init": "previous"}}, "training.init"),
        ({"task": {"frontier": 9}}, "frontier difficulty 9 has no eval problems"),
        ({"task": {"pool": {3: 0}}}, "pool is empty"),
        ({"task": {"pool": {0: 5}}}, "difficulty (digit count) must be 1..12"),
        ({"name": "has space"}, "name"),
        ({"verification": {"max_unverifiable_share": 2}}, "max_unverifiable_share"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_configs_name_the_offending_key(data, needle):
    with pytest.raises(ConfigError) as err:
        parse_config(data, "x.yaml")
    assert needle in str(err.value) and "x.yaml" in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_section_hash_tracks_changes():
    a, b = parse_config({}), parse_config({"training": {"max_steps": 7}})
    assert a.section_hash("model") == b.section_hash("model")
    assert a.section_hash() != b.section_hash()


def test_keys_added_later_leave_earlier_hashes_alone():
    """sampling.dtype and training.bf16 came after 0.3.0: at their defaults the hashes are those the
    same config had before they existed (the content hash: the round hash without the version);
    set, they count."""
    demo = load_config(DEFAULT_CONFIG)
    assert (demo.content_hash(), demo.section_hash("model")) == ("514b6068a2903f62", "20bcd9bf6cb709c5")
    data = demo.model_dump(mode="json")
    data["sampling"]["dtype"] = "bfloat16"
    assert parse_config(data).round_hash() != demo.round_hash()
    data["sampling"]["dtype"], data["training"]["bf16"] = "float32", True
    assert parse_config(data).round_hash() != demo.round_hash()


def test_extends_merges_sections_and_replaces_values(tmp_path):
    """`extends:` lays a config over its parent: sections merge key by key; count tables,
    lists and null replace the parent's value whole; a file beside the child wins."""
    (tmp_path / "parent.yaml").write_text(
        "name: parent\ntask: {pool: {3: 10, 4: 20}, seed: 5}\nsampling: {n: 4, temperature: 0.5, stop: ['x']}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: parent\nname: child\ntask: {pool: {6: 1}}\nsampling: {n: 2, stop: []}\nmodel: {warm_start: null}\n"
    )
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.name == "child" and cfg.task.pool == {6: 1} and cfg.task.seed == 5
    assert (cfg.sampling.n, cfg.sampling.temperature, cfg.sampling.stop) == (2, 0.5, ())
    assert cfg.model.warm_start is None
    star = load_config(Path("pipelines/presets/star.yaml"))  # a bundled preset by name
    assert star.repair.mode == "rationalize" and star.task.pool == {3: 150, 4: 600, 5: 150}
    (tmp_path / "loop_a.yaml").write_text("extends: loop_b\n")
    (tmp_path / "loop_b.yaml").write_text("extends: loop_a\n")
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_config(tmp_path / "loop_a.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: no_such_preset\n")
    with pytest.raises(ConfigError, match="extends 'no_such_preset', which is neither a file beside it nor a preset"):
        load_config(tmp_path / "orphan.yaml")


def test_a_control_is_not_in_the_round_hash_and_needs_warm_start_rows(tmp_path):
    """evaluation.control adds the control beside finished rounds: their hash stays; the control
    has its own. A task with no warm-start rows cannot have one (one line, naming the key)."""
    from tests.helpers import tiny_config_in

    off = load_config(tiny_config_in(tmp_path))
    on = load_config(tiny_config_in(tmp_path, evaluation__control="warm_start"))
    assert on.round_hash() == off.round_hash() and on.section_hash() == off.section_hash()
    assert off.control_hash() is None and on.control_hash() not in (None, on.round_hash())
    later = load_config(tiny_config_in(tmp_path, evaluation__control="warm_start", training__max_steps=7))
    assert later.control_hash() != on.control_hash()  # the round changed: so did its control
    with pytest.raises(ConfigError, match="evaluation.control warm_start trains on the task's warm-start rows"):
        load_config(tiny_config_in(tmp_path, evaluation__control="warm_start", task__warm_start={}))
