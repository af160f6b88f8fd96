"""Numbers of one CSV column and their mean."""

import csv


def column_values(path, column):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [float(row[column]) for row in rows]


def column_mean(path, column):
    values = column_values(path, column)
    if not values:
        raise ValueError(f"column {column!r} has no values")
    return sum(values) / len(values)
