"""KVStore: a dict persisted as one `key=value` line per entry."""

import os


class KVStore:
    def __init__(self, path):
        self.path = path
        self.data = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    key, _, value = line.rstrip("\n").partition("=")
                    self.data[key] = value

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value

    def save(self):
        with open(self.path, "w", encoding="utf-8") as f:
            for key in sorted(self.data):
                f.write(f"{key}={self.data[key]}\n")
