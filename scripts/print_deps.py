"""Print the project's dependencies (and optional extras) from pyproject.toml, one per line, for pip."""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
deps = list(project["dependencies"])
for extra in sys.argv[1:]:
    deps += project.get("optional-dependencies", {}).get(extra, [])
print("\n".join(deps))
