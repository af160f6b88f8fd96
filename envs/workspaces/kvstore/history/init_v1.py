"""kvstore: a persistent key-value store in one text file."""

from kvstore.store import KVStore

__version__ = "0.1.0"
__all__ = ["KVStore"]
