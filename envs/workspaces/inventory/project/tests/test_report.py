from inventory import Item, Store
from inventory.report import report


def test_report():
    s = Store()
    s.add(Item("Z9", "zinc", 1.25), 4)
    assert report(s, ["Z9"]) == "Z9: 4\ntotal value: 5.00"
