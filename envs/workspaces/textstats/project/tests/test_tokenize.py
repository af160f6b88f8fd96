from textstats import tokenize


def test_words_and_apostrophes():
    assert tokenize("don't stop") == ["don't", "stop"]


def test_case_folded():
    assert tokenize("The cat saw THE dog") == ["the", "cat", "saw", "the", "dog"]
