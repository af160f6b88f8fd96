#!/usr/bin/env bash
# Build PyPI's pufferlib 3.0.0 headless and install it into the ACTIVE virtualenv without changing any package
# that is already installed (the project's pins: gymnasium==1.2.2 for RLlib, numpy 2.x, pettingzoo 1.27, ...).
#
# Why a script: the sdist cannot be installed as is.
#   * setup.py downloads raylib and box2d from GitHub at import time (no network here; not needed headless);
#   * its NO_OCEAN=1 switch, which skips those downloads and the C "ocean" envs, then fails with
#     `NameError: name 'c_extension_paths' is not defined`;
#   * install_requires pins gymnasium<=0.29.1, numpy<2.0 and pettingzoo<=1.24.1, which would downgrade (or make
#     pip refuse) the versions RLlib 2.60 needs;
#   * `import pufferlib` creates a `resources` symlink in the current working directory (for the raylib renderers).
# What it does: fetch the sdist through the package index (sha256 checked), patch setup.py (skip raylib/box2d and
# the ocean extensions, define the missing name, relax the pins), remove the import-time symlink, build with
# `pip install --no-deps --no-build-isolation`, then install the runtime deps it really imports (`gym`, used by
# pufferlib.spaces) under a constraints file that freezes every installed package.
#
# Usage:  . .venv/bin/activate && scripts/install_pufferlib.sh
# Env:    PUFFERLIB_SDIST=/path/pufferlib-3.0.0.tar.gz  use a local sdist instead of downloading it
#         PUFFERLIB_WITH_TRAIN=1   also build the torch C++/CUDA extension pufferlib._C (needed only by
#                                  pufferlib's own trainer, pufferlib.pufferl; slow to compile)
#         PIP_INDEX_URL            package index to fetch from (default https://pypi.org/simple)
set -euo pipefail

VERSION=3.0.0
PYTHON=${PYTHON:-python}

die() { echo "install_pufferlib: $*" >&2; exit 1; }

"$PYTHON" - <<'EOF' || die "no virtualenv is active; run \`. .venv/bin/activate\` first (refusing to touch the system Python)"
import sys
sys.exit(0 if sys.prefix != sys.base_prefix else 1)
EOF
"$PYTHON" -c "import torch, numpy, setuptools" 2>/dev/null \
  || die "the build needs torch, numpy and setuptools in the active venv (install the project first: make setup)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pufferlib-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SDIST="$WORK/pufferlib-$VERSION.tar.gz"

# 1. The sdist. `pip download` cannot be used: it runs setup.py to prepare metadata, which needs the network.
if [[ -n "${PUFFERLIB_SDIST:-}" ]]; then
  [[ -f "$PUFFERLIB_SDIST" ]] || die "PUFFERLIB_SDIST=$PUFFERLIB_SDIST does not exist"
  cp "$PUFFERLIB_SDIST" "$SDIST"
else
  echo "install_pufferlib: fetching pufferlib-$VERSION.tar.gz from ${PIP_INDEX_URL:-https://pypi.org/simple}"
  "$PYTHON" - "$VERSION" "$SDIST" <<'EOF' || die "could not download the sdist (set PUFFERLIB_SDIST to a local copy)"
import hashlib, html.parser, os, sys, urllib.parse, urllib.request

version, dest = sys.argv[1], sys.argv[2]
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
page_url = f"{index}/pufferlib/"
wanted = f"pufferlib-{version}.tar.gz"

class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []
    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href"]

with urllib.request.urlopen(urllib.request.Request(page_url, headers={"Accept": "text/html"}), timeout=120) as r:
    parser = Links()
    parser.feed(r.read().decode())
matches = [h for h in parser.hrefs if urllib.parse.urlparse(h).path.endswith("/" + wanted)]
if not matches:
    sys.exit(f"{wanted} is not listed on {page_url}")
url = urllib.parse.urljoin(page_url, matches[0])
expected = urllib.parse.urlparse(url).fragment.partition("sha256=")[2]
digest = hashlib.sha256()
with urllib.request.urlopen(url.split("#")[0], timeout=600) as r, open(dest, "wb") as f:
    while chunk := r.read(1 << 20):
        digest.update(chunk)
        f.write(chunk)
if not expected:
    sys.exit(f"the index gave no sha256 for {wanted}; refusing an unchecked download")
if digest.hexdigest() != expected:
    sys.exit(f"sha256 mismatch for {wanted}: got {digest.hexdigest()}, index says {expected}")
print(f"install_pufferlib: sha256 ok ({expected})")
EOF
fi

tar -xzf "$SDIST" -C "$WORK"
SRC="$WORK/pufferlib-$VERSION"
[[ -f "$SRC/setup.py" ]] || die "unexpected sdist layout: $SRC/setup.py is missing"

# 2. Patch. Every edit asserts that its anchor exists, so a different sdist fails here instead of half-patching.
"$PYTHON" - "$SRC" <<'EOF'
import pathlib, sys

src = pathlib.Path(sys.argv[1])

def patch(path, old, new):
    text = path.read_text()
    if old not in text:
        sys.exit(f"install_pufferlib: cannot patch {path.name}: anchor not found:\n{old}")
    path.write_text(text.replace(old, new, 1))

setup = src / "setup.py"
# NO_OCEAN=1 skips the raylib/box2d downloads and the C envs but leaves this name undefined (NameError).
patch(setup, "c_extensions = []\nif not NO_OCEAN:", "c_extensions = []\nc_extension_paths = []\nif not NO_OCEAN:")
# Relax the pins that fight RLlib 2.60 (gymnasium==1.2.2) and numpy 2; shimmy is only for legacy gym-v21 envs.
patch(
    setup,
    """install_requires = [
    'numpy<2.0',
    f'gym<={GYM_VERSION}',
    f'gymnasium<={GYMNASIUM_VERSION}',
    f'pettingzoo<={PETTINGZOO_VERSION}',
    'shimmy[gym-v21]',
    'setuptools'
]""",
    """install_requires = [
    'numpy',
    'gym',
    'gymnasium',
    'pettingzoo',
    'setuptools'
]""",
)
# Headless: no raylib renderer, so no `resources` symlink dropped into the caller's working directory.
patch(
    src / "pufferlib" / "__init__.py",
    "try:\n    os.symlink(link_to, 'resources')\nexcept FileExistsError:\n    pass\n",
    "",
)
print("install_pufferlib: patched setup.py (NO_OCEAN NameError, relaxed pins) and pufferlib/__init__.py")
EOF

# 3. Build and install the package alone (no dependency resolution, so nothing installed changes).
NO_TRAIN=1
[[ "${PUFFERLIB_WITH_TRAIN:-0}" == "1" ]] && NO_TRAIN=0
echo "install_pufferlib: building (NO_OCEAN=1 NO_TRAIN=$NO_TRAIN)"
(cd "$SRC" && NO_OCEAN=1 NO_TRAIN=$NO_TRAIN "$PYTHON" -m pip install --no-deps --no-build-isolation .)

# 4. Runtime deps pufferlib imports that are missing, pinned so that every installed package keeps its version.
CONSTRAINTS="$WORK/constraints.txt"
"$PYTHON" -m pip list --format=freeze --exclude-editable | grep -E '^[A-Za-z0-9_.-]+==' \
  | grep -viE '^(pufferlib|gym|gym-notices|gym_notices)==' >"$CONSTRAINTS"
# pufferlib.spaces does `import gym` (0.23.1 is the newest within its old pin); pufferlib.vector imports psutil.
RUNTIME_DEPS=("gym==0.23.1" psutil)
if [[ "$NO_TRAIN" == "0" ]]; then
  RUNTIME_DEPS+=(rich rich_argparse imageio pynvml pyro-ppl)  # pufferlib.pufferl imports pufferlib.sweep (pyro)
fi
"$PYTHON" -m pip install -c "$CONSTRAINTS" "${RUNTIME_DEPS[@]}"

# 5. Smoke check from a scratch directory (pufferlib must import and vectorize a native env).
(cd "$WORK" && "$PYTHON" - <<'EOF')
import warnings

warnings.simplefilter("ignore")
import gymnasium
import numpy as np
import pufferlib
import pufferlib.emulation
import pufferlib.vector

env = pufferlib.vector.make(
    pufferlib.emulation.GymnasiumPufferEnv,
    env_kwargs={"env_creator": lambda: gymnasium.make("CartPole-v1")},
    backend=pufferlib.vector.Serial,
    num_envs=2,
)
obs, _ = env.reset(seed=0)
env.step(np.zeros(env.action_space.shape, dtype=np.int32))
env.close()
print(f"install_pufferlib: pufferlib {pufferlib.__version__} works (gymnasium {gymnasium.__version__}, "
      f"numpy {np.__version__})")
EOF
