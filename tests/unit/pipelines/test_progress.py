"""Where an experiment stands (pipelines/progress.py): the plateau rule."""

import pytest

from pipelines import progress


@pytest.mark.parametrize(
    "accs,margin,patience,stops",
    [
        ([0.1, 0.2, 0.3], 0.01, 2, False),
        ([0.1, 0.5, 0.5, 0.505], 0.01, 2, True),  # two rounds, +0.5 points: below the margin
        ([0.1, 0.5, 0.4, 0.52], 0.01, 2, False),
        ([0.3], 0.01, 1, False),  # nothing to compare yet
        ([0.3, 0.3], 0.0, 1, True),  # no gain at all
    ],
)
def test_plateau(accs, margin, patience, stops):
    history = [(f"r{i:03d}", a) for i, a in enumerate(accs)]
    reason = progress.plateau(history, margin, patience)
    assert (reason is not None) == stops
    if stops:
        assert reason.startswith("plateau:") and f"last {patience} rounds" in reason
