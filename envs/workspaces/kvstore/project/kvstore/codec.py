"""One `key=value` line per entry; backslash escapes for `\\`, `=` and newlines."""


def _escape(text):
    return text.replace("=", "\\=").replace("\n", "\\n")


def _unescape(text):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n"}.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def encode_line(key, value):
    return f"{_escape(key)}={_escape(value)}"


def decode_line(line):
    i = 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == "=":
            return _unescape(line[:i]), _unescape(line[i + 1 :])
        i += 1
    raise ValueError(f"no separator in line {line!r}")
