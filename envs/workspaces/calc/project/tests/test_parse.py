import pytest

from calc import evaluate


def test_left_to_right():
    assert evaluate("1 + 2 * 3") == 9


def test_division_in_expression():
    assert evaluate("9 / 2") == 4.5


def test_malformed():
    with pytest.raises(ValueError):
        evaluate("1 +")
