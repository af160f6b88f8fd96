import sys
from pathlib import Path

# The generated module lives in build/ (run `make` first).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "build"))
