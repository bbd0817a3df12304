"""Phases (selftaught/config/phases.py): rounds of one experiment with other settings, each round
under its own resolved config and hash; a bad phase spec is one config error that names it."""

from pathlib import Path

import pytest
import yaml

from pipelines.build import DEFAULT_CONFIG
from selftaught.config import ConfigError, load_config
from selftaught.config.phases import parse_rounds

GRPO = {"objective": "grpo", "learning_rate": 1.0e-5, "max_steps": 20, "grpo": {"num_generations": 4}}


def _config(tmp_path: Path, phases: list, **top) -> Path:
    path = tmp_path / "phased.yaml"
    path.write_text(yaml.safe_dump({"extends": str(DEFAULT_CONFIG), "max_rounds": 3, "phases": phases, **top}))
    return path


@pytest.mark.parametrize(
    "text,span", [(3, (3, 3)), ("1-2", (1, 2)), ("3+", (3, None)), ("3-", (3, None)), (" 2 - 4 ", (2, 4))]
)
def test_round_ranges_read_as_written(text, span):
    assert parse_rounds(text) == span


def test_each_round_runs_its_phase_laid_over_the_experiment(tmp_path):
    base = load_config(DEFAULT_CONFIG)
    cfg = load_config(_config(tmp_path, [{"rounds": "1-2", "name": "sft"}, {"rounds": "3+", "training": GRPO}]))
    assert [cfg.phase_label(i) for i in (1, 2, 3)] == ["sft", "sft", "phase2"]
    r3 = cfg.for_round(3)
    assert r3.training.objective == "grpo" and r3.training.learning_rate == 1.0e-5
    assert r3.training.grpo.num_generations == 4 and r3.training.batch_size == base.training.batch_size  # merged
    assert r3.task == base.task and r3.evaluation == base.evaluation and r3.phases == []
    # An SFT phase that sets nothing is the experiment's config: the demo's round hash.
    assert cfg.for_round(1).round_hash() == base.round_hash() == cfg.round_hash()
    assert r3.round_hash() != base.round_hash()


def test_a_round_no_phase_covers_runs_the_experiments_config(tmp_path):
    cfg = load_config(_config(tmp_path, [{"rounds": 2, "training": {"learning_rate": 1.0e-4}}]))
    assert cfg.for_round(1) is cfg and cfg.for_round(3) is cfg and cfg.phase_label(1) is None
    assert cfg.for_round(2).training.learning_rate == 1.0e-4


def test_changing_a_later_phase_leaves_earlier_rounds_hashes_alone(tmp_path):
    one = load_config(_config(tmp_path, [{"rounds": "1-2"}, {"rounds": "3+", "training": GRPO}]))
    two = load_config(_config(tmp_path, [{"rounds": "1-2"}, {"rounds": "3+", "training": {**GRPO, "max_steps": 40}}]))
    assert [one.for_round(i).round_hash() for i in (1, 2)] == [two.for_round(i).round_hash() for i in (1, 2)]
    assert one.for_round(3).round_hash() != two.for_round(3).round_hash()


@pytest.mark.parametrize(
    "phases,needle",
    [
        ([{"rounds": "1-2"}, {"rounds": "2+"}], "phases 1 (rounds 1-2) and 2 (rounds 2+) both cover round 2"),
        ([{"rounds": "3-2"}], "rounds '3-2' is empty"),
        ([{"rounds": 0}], "rounds are numbered from 1"),
        ([{"rounds": "two"}], "rounds must be a round or a range such as 1-2 or 3+"),
        ([{"rounds": 5}], "phase 1 (round 5) starts after the last round (max_rounds 3)"),
        ([{"rounds": 2, "training": {"objectiv": "grpo"}}], "phase 1 (round 2): training.objectiv: unknown key"),
        ([{"rounds": 2, "trainig": {}}], "phase 1: trainig: unknown key; a phase sets sampling"),
        ([{"rounds": 2, "evaluation": {"max_new_tokens": 8}}], "task, model and evaluation are the experiment's"),
        ([{"rounds": 2, "training": {"learning_rate": -1}}], "phase 1 (round 2): training.learning_rate"),
        (
            [{"rounds": "2+", "training": {"objective": "grpo"}, "repair": {"mode": "rationalize"}}],
            "phase 1 (rounds 2+): training.objective grpo generates its rollouts inside training",
        ),
        ([{"rounds": 1, "name": "a"}, {"rounds": 2, "name": "a"}], "phase names repeat"),
        ([{"rounds": 1, "name": "has space"}], "phase 1: name"),
    ],
)
def test_a_bad_phase_is_one_config_error_that_names_it(tmp_path, phases, needle):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, phases))
    assert needle in str(err.value), str(err.value)
    assert str(err.value).count("\n  - ") == 1, str(err.value)  # one problem, one line


def test_the_round_table_names_each_rounds_phase_only_when_there_are_phases():
    from pipelines.round_table import format_table

    rows = [{"round": "base", "accuracy": {4: 0.5}}, {"round": "r001", "phase": "sft", "accuracy": {4: 0.6}}]
    table = format_table(rows).splitlines()
    assert table[0].split()[:2] == ["round", "phase"] and table[3].split()[:2] == ["r001", "sft"]
    assert "phase" not in format_table([{"round": "r001", "accuracy": {4: 0.6}}])


def test_validate_shows_each_phase_and_the_config_a_round_runs(tmp_path, capsys):
    from pipelines.cli import main

    path = _config(tmp_path, [{"rounds": "1-2", "name": "sft"}, {"rounds": "3+", "name": "rl", "training": GRPO}])
    assert main(["validate", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "phase sft (rounds 1-2): objective sft" in out and "phase rl (rounds 3+): objective grpo" in out
    assert main(["validate", "--config", str(path), "--show", "--round", "3"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("# round 3, phase rl: round hash ") and "objective: grpo" in shown
    assert main(["validate", "--config", str(path), "--round", "4"]) == 2
