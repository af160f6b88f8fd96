"""kvstore: a persistent key-value store in one text file."""

from kvstore.codec import decode_line, encode_line
from kvstore.store import KVStore

__version__ = "0.4.0"
__all__ = ["KVStore", "decode_line", "encode_line"]
