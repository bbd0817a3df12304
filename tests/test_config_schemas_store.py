import os
from pathlib import Path

import polars as pl
import pytest

from pipelines.build import DEFAULT_CONFIG
from selftaught import schemas
from selftaught.config import ConfigError, load_config, parse_config
from selftaught.files import dir_hash, publish_dir, write_parquet_atomic
from selftaught.round_keys import next_round, parent_key, round_index, round_key
from selftaught.store import Store, ensure_writable


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


def test_round_keys():
    assert round_key(1) == "r001" and round_index("r012") == 12
    assert parent_key("r001") is None and parent_key("r010") == "r009"
    assert next_round(["r001", "r002"]) == "r003" and next_round([]) == "r001"
    with pytest.raises(ValueError, match="not a round key"):
        round_index("round-1")


def test_validate_reports_missing_columns_and_bad_verdicts():
    with pytest.raises(schemas.SchemaError, match="missing column"):
        schemas.validate(pl.DataFrame({"round": ["r001"]}), "samples")
    v = schemas.empty("verdicts").vstack(
        pl.DataFrame(
            {
                "round": ["r"],
                "prompt_id": ["p"],
                "sample_idx": [0],
                "verdict": ["maybe"],
                "reward": [0.0],
                "extracted_answer": [None],
                "parsed_reference": [None],
                "rationale_ok": [None],
                "reason": [""],
                "verifier": ["v"],
                "details": [None],
            },
            schema=schemas.VERDICTS_TABLE,
        )
    )
    with pytest.raises(schemas.SchemaError, match="verdict must be one of"):
        schemas.validate(v, "verdicts")
    with pytest.raises(schemas.SchemaError, match="undeclared"):
        schemas.validate(schemas.empty("prompts").with_columns(pl.lit(1).alias("x")), "prompts")


def test_atomic_parquet_write_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "t" / "r001.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1]}), path)

    class Boom(pl.DataFrame):
        def write_parquet(self, *a, **k):
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_parquet_atomic(Boom({"a": [2]}), path)
    assert pl.read_parquet(path)["a"].to_list() == [1]
    assert os.listdir(path.parent) == ["r001.parquet"]


def test_store_validates_on_write_and_read(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(schemas.SchemaError):
        store.write_table(pl.DataFrame({"x": [1]}), "samples", "r001")
    assert not store.table_path("samples", "r001").exists()
    with pytest.raises(FileNotFoundError, match="no samples table for r001"):
        store.read_table("samples", "r001")


def test_every_policy_evaluation_is_one_table_and_a_03_base_evaluation_is_still_read(tmp_path):
    store = Store(tmp_path)
    rows = pl.DataFrame(
        {
            "prompt_id": ["p"],
            "difficulty": [1],
            "prompt": ["q"],
            "reference": ["1"],
            "completion": ["1"],
            "extracted_answer": ["1"],
            "verdict": ["correct"],
            "policy_id": ["base"],
        }
    )
    assert store.evaluation_path("base") == store.table_path("evaluation", "base")
    legacy = tmp_path / "tables" / "eval_results" / "base.parquet"
    write_parquet_atomic(rows, legacy)  # an experiment that selftaught 0.3 wrote
    assert store.evaluation_path("base") == legacy
    assert store.evaluation_path("r001") == store.table_path("evaluation", "r001")
    write_parquet_atomic(rows, store.table_path("evaluation", "base"))
    assert store.evaluation_path("base") == store.table_path("evaluation", "base")


def test_publish_dir_replaces_and_dir_hash_tracks_content(tmp_path):
    a, dst = tmp_path / "a", tmp_path / "out"
    a.mkdir()
    (a / "f").write_text("1")
    publish_dir(a, dst)
    h1 = dir_hash(dst)
    b = tmp_path / "b"
    b.mkdir()
    (b / "f").write_text("2")
    publish_dir(b, dst)
    assert (dst / "f").read_text() == "2" and dir_hash(dst) != h1 and not a.exists() and not b.exists()


def test_unwritable_root_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a root under a regular file fails even for root
    with pytest.raises(PermissionError, match="not writable"):
        ensure_writable(blocker / "store")


def test_keys_added_later_leave_earlier_hashes_alone():
    """sampling.dtype and training.bf16 came after 0.3.0: at their defaults the hashes are those the
    same config had before they existed (the pinned round hash is 0.4.0's: the version counts);
    set, they count."""
    demo = load_config(DEFAULT_CONFIG)
    assert (demo.round_hash(), demo.section_hash("model")) == ("3f2aab1d853e83aa", "20bcd9bf6cb709c5")
    data = demo.model_dump(mode="json")
    data["sampling"]["dtype"] = "bfloat16"
    assert parse_config(data).round_hash() != demo.round_hash()
    data["sampling"]["dtype"], data["training"]["bf16"] = "float32", True
    assert parse_config(data).round_hash() != demo.round_hash()


def test_a_trained_base_is_keyed_by_the_code_version(monkeypatch):
    """The warm start trains the base here, so a release that trains otherwise (0.4.0 pads its
    batches) must retrain it, not reuse the cached one; a base only copied keeps its key."""
    import assets.setup as setup

    demo = load_config(DEFAULT_CONFIG)
    data = demo.model_dump(mode="json")
    data["model"]["warm_start"] = None
    copied = parse_config(data)
    keys = setup._base_key(demo), setup._base_key(copied)
    monkeypatch.setattr(setup, "__version__", "99.0.0")
    assert setup._base_key(demo) != keys[0]
    assert setup._base_key(copied) == keys[1]


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


def test_validate_show_prints_a_config_that_loads_back_the_same(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", "--config", "pipelines/presets/bstar.yaml", "--show"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "whole.yaml").write_text(out)
    assert load_config(tmp_path / "whole.yaml") == load_config(Path("pipelines/presets/bstar.yaml"))


def test_a_cached_config_sees_an_edit_to_the_file_it_extends(tmp_path):
    from assets.resources import experiment_config

    (tmp_path / "parent.yaml").write_text("name: parent\nsampling: {n: 4}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent\nname: child\n")
    assert experiment_config(child).sampling.n == 4
    (tmp_path / "parent.yaml").write_text("name: parent\nsampling: {n: 6}\n")
    os.utime(tmp_path / "parent.yaml", ns=(1, 10**18))  # a distinct mtime even within one clock tick
    assert experiment_config(child).sampling.n == 6
