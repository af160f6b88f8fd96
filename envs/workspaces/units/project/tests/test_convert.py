import pytest

from units import convert


def test_metric():
    assert convert(2.5, "km", "m") == 2500.0
    assert convert(250, "g", "kg") == 0.25


def test_miles():
    assert convert(1, "mi", "m") == pytest.approx(1609.344)
    assert convert(10, "km", "mi") == pytest.approx(6.2137, rel=1e-4)


def test_dimension_mismatch():
    with pytest.raises(ValueError):
        convert(1, "kg", "m")
