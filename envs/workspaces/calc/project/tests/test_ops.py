import pytest

from calc import add, divide, multiply, subtract


def test_add_sub_mul():
    assert add(2, 3) == 5
    assert subtract(2, 3) == -1
    assert multiply(4, 2.5) == 10


def test_divide():
    assert divide(7, 2) == 3.5
    assert divide(-1, 4) == -0.25


def test_divide_by_zero():
    with pytest.raises(ZeroDivisionError):
        divide(1, 0)
