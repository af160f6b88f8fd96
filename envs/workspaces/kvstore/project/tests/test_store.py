from kvstore import KVStore


def test_roundtrip(tmp_path):
    path = str(tmp_path / "db.txt")
    s = KVStore(path)
    s.set("a", "1")
    s.set("b", "two")
    s.save()
    assert KVStore(path).data == {"a": "1", "b": "two"}


def test_delete(tmp_path):
    path = str(tmp_path / "db.txt")
    s = KVStore(path)
    s.set("a", "1")
    s.delete("a")
    s.save()
    assert KVStore(path).data == {}
