"""The verifier on hand-written completions: run `python -m pytest $name/tests`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ${module} import unit_match  # noqa: E402


def check(completion, value=3000, unit="m"):
    return unit_match("Convert 3 kilometers to meters.", completion, str(value), value=value, unit=unit)


def test_the_right_number_and_unit_is_correct():
    assert check("3 km is 3 x 1000 = 3000 meters.\n#### 3000 m")[0] is True
    assert check("That makes 3,000 metres.")[0] is True


def test_a_wrong_number_or_unit_is_incorrect():
    assert check("#### 300 m") == (False, "300 m is not the value")
    assert check("#### 3000 cm") == (False, "unit cm, expected m")
    assert check("I don't know.") == (False, "no number with a unit")


def test_a_row_without_a_value_cannot_be_checked():
    assert check("#### 3000 m", value=None)[0] is None
