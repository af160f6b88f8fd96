"""Turn a title into a lowercase, dash-separated slug."""

import re

from slugify.translit import transliterate

NON_WORD = re.compile(r"[^a-z0-9]+")


def slugify(title, max_len=50):
    text = transliterate(title).lower()
    slug = NON_WORD.sub("-", text)
    return slug[:max_len]
