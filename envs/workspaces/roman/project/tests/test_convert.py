import pytest

from roman import from_roman, to_roman


@pytest.mark.parametrize("n,text", [(1, "I"), (4, "IV"), (9, "IX"), (14, "XIV"), (1994, "MCMXCIV"), (3999, "MMMCMXCIX")])
def test_both_ways(n, text):
    assert to_roman(n) == text
    assert from_roman(text) == n


def test_range():
    with pytest.raises(ValueError):
        to_roman(0)
