"""Counting words."""

from collections import Counter

from textstats.tokenize import tokenize


def word_count(text):
    return len(tokenize(text))


def top_words(text, n=3):
    """The ``n`` most frequent words, ties broken alphabetically."""
    counts = Counter(tokenize(text))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
