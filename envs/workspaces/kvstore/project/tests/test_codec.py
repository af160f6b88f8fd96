import pytest

from kvstore import decode_line, encode_line


@pytest.mark.parametrize(
    "key,value",
    [("a", "b"), ("k=1", "v=2"), ("multi", "line\nvalue"), ("path", "C:\\temp\\new"), ("x\\", "=")],
)
def test_roundtrip(key, value):
    assert decode_line(encode_line(key, value)) == (key, value)


def test_no_separator():
    with pytest.raises(ValueError):
        decode_line("novalue")
