from pathlib import Path

from csvsum import column_mean, column_values

DATA = Path(__file__).resolve().parent.parent / "data" / "prices.csv"


def test_every_row_counted():
    assert column_values(DATA, "qty") == [10.0, 3.0, 2.0, 1.0]


def test_mean():
    assert column_mean(DATA, "price") == 2.0
