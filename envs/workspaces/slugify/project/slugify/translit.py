"""Replace accented Latin letters by their ASCII base letters."""

import unicodedata


def transliterate(text):
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))
