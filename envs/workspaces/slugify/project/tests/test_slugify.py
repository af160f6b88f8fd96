from slugify import slugify


def test_basic():
    assert slugify("Hello, World!") == "hello-world"


def test_accents():
    assert slugify("Crème brûlée") == "creme-brulee"


def test_no_dashes_at_ends():
    assert slugify("  --Ray Serve--  ") == "ray-serve"
    assert slugify("abc def", max_len=4) == "abc"
