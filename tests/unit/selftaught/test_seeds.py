"""Every derived seed (selftaught/seeds.py): the formulas are part of every round's rows, so
their values are pinned; a change here needs a version bump (CHANGELOG.md)."""

import pytest

from selftaught import seeds


def test_task_splits_and_rounds_draw_from_separate_streams():
    assert seeds.task_split_seed(0, "warm_start") == 1 and seeds.task_split_seed(0, "eval") == 2
    assert seeds.task_split_seed(3, "eval") == 3 * 7919 + 2
    assert seeds.task_round_seed(3, 2) == 3 * 7919 + 1002
    with pytest.raises(KeyError):
        seeds.task_split_seed(0, "train")


def test_sampling_and_training_seeds_move_with_the_round():
    assert seeds.sampling_round_seed(3, 2) == 3002
    assert seeds.training_seed(7, 3) == 10 and seeds.training_seed(7, 0) == 7  # the warm start: round 0


def test_position_seeds_are_pinned():
    assert seeds.derive_seed(0, "shard", 1) == 1493473976
    assert seeds.shard_seed(5, 2) == 1229285774 == seeds.derive_seed(5, "shard", 2)
    assert seeds.prompt_seed(5, 3) == 1009662223 == seeds.derive_seed(5, 3)
    assert seeds.hf_batch_seed(2, 3) == 2_000_009
    assert seeds.mixed_seed(1, 2) == 1596810411
    assert all(0 <= seeds.derive_seed(s, "x", i) < 2**31 for s in range(5) for i in range(5))


def test_no_other_module_derives_a_seed_by_hand():
    """The formulas that used to be spread over five modules stay here."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    for pattern in ("7919", "1_000_003", "SeedSequence("):
        hits = [
            str(p.relative_to(root))
            for layer in ("selftaught", "synth", "filters", "train", "assets", "pipelines")
            for p in (root / layer).rglob("*.py")
            if pattern in p.read_text() and p.name != "seeds.py"
        ]
        assert not hits, f"{pattern!r} outside selftaught/seeds.py: {hits}"
