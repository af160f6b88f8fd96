"""roman: Roman numerals."""

from roman.convert import from_roman, to_roman

__version__ = "1.2.0"
__all__ = ["from_roman", "to_roman"]
