"""A code round through Dagster: generate -> sandbox-verify -> SFT -> evaluate on HumanEval prompts."""

import json

import pytest

from tests.helpers import ROOT, TESTS

HUMANEVAL = str(ROOT / "data" / "humaneval" / "HumanEval.jsonl.gz")


@pytest.mark.slow
def test_code_round_through_dagster(tmp_path):
    """generate -> sandbox-verify -> SFT -> evaluate on HumanEval prompts with the tiny model."""
    import yaml

    from tests.helpers import run_rounds

    data = yaml.safe_load((TESTS / "configs" / "code_tiny.yaml").read_text())
    data["storage_root"] = str(tmp_path / "store")
    for split in ("train", "test"):
        data["task"][split]["path"] = HUMANEVAL
    config = tmp_path / "code.yaml"
    config.write_text(yaml.safe_dump(data))
    store, _, _ = run_rounds(config, tmp_path)
    verdicts = store.read_table("verdicts", "r001")
    assert verdicts.height == 4 * 2 and set(verdicts["verifier"]) == {"sandbox@1"}
    assert verdicts["details"].null_count() == 0
    assert all(json.loads(d)["status"] for d in verdicts["details"])
    rows = store.read_table("training_set", "r001")
    assert (rows["source_round"] == "warm_start").sum() == 4
    assert (store.model_dir("r001") / "provenance.json").is_file()
    ev = store.read_table("evaluation", "r001")
    assert ev.height == 3 and set(ev["verdict"]) <= {"correct", "incorrect"}
