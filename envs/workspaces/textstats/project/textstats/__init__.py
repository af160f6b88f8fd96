"""textstats: word statistics of plain text."""

from textstats.counts import top_words, word_count
from textstats.tokenize import tokenize

__version__ = "1.0.1"
__all__ = ["tokenize", "top_words", "word_count"]
