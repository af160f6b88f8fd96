"""python3 -m csvsum.cli FILE COLUMN: print the column mean."""

import sys

from csvsum.stats import column_mean


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    print(f"{column_mean(argv[0], argv[1]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
