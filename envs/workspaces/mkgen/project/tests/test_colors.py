from pathlib import Path

import colors

HEADER = Path(__file__).resolve().parent.parent / "build" / "colors.h"


def test_table():
    assert colors.COLORS["red"] == (255, 0, 0)
    assert colors.COLORS["blue"] == (0, 0, 255)
    assert colors.COLORS["orange"] == (255, 165, 0)


def test_header():
    text = HEADER.read_text()
    assert "#define COLOR_BLUE 0x0000ff" in text
    assert "#define COLOR_WHITE 0xffffff" in text
