import pytest

from inventory import Item, Store


def make_store():
    s = Store()
    s.add(Item("A1", "apple", 0.5), 10)
    s.add(Item("B2", "bread", 2.0), 3)
    return s


def test_quantities():
    s = make_store()
    s.remove("A1", 4)
    assert s.quantity("A1") == 6
    with pytest.raises(ValueError):
        s.remove("B2", 5)


def test_total_value():
    assert make_store().total_value() == 11.0
