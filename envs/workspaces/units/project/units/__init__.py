"""units: convert lengths and masses."""

from units.convert import convert

__version__ = "0.1.4"
__all__ = ["convert"]
