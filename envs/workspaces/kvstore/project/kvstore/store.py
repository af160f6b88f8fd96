"""KVStore: a dict persisted as one encoded line per entry."""

import os

from kvstore.codec import decode_line, encode_line


class KVStore:
    def __init__(self, path):
        self.path = path
        self.data = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.rstrip("\n")
                    if line:
                        key, value = decode_line(line)
                        self.data[key] = value

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value

    def delete(self, key):
        self.data.pop(key, None)

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for key in sorted(self.data):
                f.write(encode_line(key, self.data[key]) + "\n")
        os.replace(tmp, self.path)
