"""Split text into words."""

import re

WORD = re.compile(r"[A-Za-z']+")


def tokenize(text):
    """Words of ``text``, case-folded, apostrophes kept inside words."""
    return [w.strip("'").lower() for w in WORD.findall(text) if w.strip("'")]
