"""python3 -m textstats.cli FILE: print the word count and the top words."""

import sys

from textstats.counts import top_words, word_count


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        text = f.read()
    print(word_count(text))
    for word, count in top_words(text):
        print(f"{word} {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
