"""Round keys (selftaught/round_keys.py): r001.., parents and next rounds, malformed keys."""

import pytest

from selftaught.round_keys import next_round, parent_key, round_index, round_key


@pytest.mark.parametrize("key", ["round1", "r1", "R001", "r000"])
def test_bad_round_keys(key):
    from selftaught.round_keys import parent_key, round_index

    with pytest.raises(ValueError, match="round"):
        parent_key(key) if key != "r000" else __import__("selftaught.round_keys").round_keys.round_key(round_index(key))


def test_round_keys():
    assert round_key(1) == "r001" and round_index("r012") == 12
    assert parent_key("r001") is None and parent_key("r010") == "r009"
    assert next_round(["r001", "r002"]) == "r003" and next_round([]) == "r001"
    with pytest.raises(ValueError, match="not a round key"):
        round_index("round-1")
