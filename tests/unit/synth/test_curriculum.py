"""The curriculum (synth/curriculum.py): a difficulty opens once its probe is solved."""


def test_curriculum_opens_one_difficulty_once_its_probe_is_solved():
    from synth.curriculum import level, pool_counts

    pool = {3: 150, 4: 600, 5: 150}
    assert pool_counts(pool, 3, probe=30) == {3: 150, 4: 30}
    assert pool_counts(pool, 5, probe=30) == pool  # nothing harder to probe
    assert level(3, {3: 0.5, 4: 0.0}, open_at=0.0) == 3
    assert level(3, {3: 0.5, 4: 0.02}, open_at=0.0) == 4
    assert level(3, {3: 0.5, 4: 0.02}, open_at=0.05) == 3
    assert level(4, {}, open_at=0.0) == 4  # round 1: the frontier
