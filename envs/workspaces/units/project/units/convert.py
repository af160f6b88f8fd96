"""convert(value, from_unit, to_unit) within one dimension."""

from units.factors import LENGTH, MASS


def _table(unit):
    for table in (LENGTH, MASS):
        if unit in table:
            return table
    raise KeyError(f"unknown unit {unit!r}")


def convert(value, from_unit, to_unit):
    table = _table(from_unit)
    if to_unit not in table:
        raise ValueError(f"cannot convert {from_unit} to {to_unit}")
    return value * table[from_unit] / table[to_unit]
