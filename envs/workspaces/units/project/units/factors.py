"""Conversion factors to the base unit of each dimension (metre, kilogram)."""

LENGTH = {
    "m": 1.0,
    "km": 1000.0,
    "cm": 0.01,
    "mi": 1.0 / 1609.344,
    "ft": 0.3048,
}

MASS = {
    "kg": 1.0,
    "g": 0.001,
    "lb": 0.45359237,
}
