from textstats import top_words, word_count


def test_word_count():
    assert word_count("one, two; three!") == 3


def test_top_words_case_insensitive():
    assert top_words("b A a B a", n=2) == [("a", 3), ("b", 2)]
