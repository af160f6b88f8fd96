"""The wheel installs anywhere: it carries the Hydra configs and the env data, and an installed dspy-rl trains,
evaluates and submits a Ray job from a directory outside the checkout.

The wheel is built by maturin with a quick release profile (no LTO, opt-level 1) into ``rust_env/target/wheel``, so
a rebuild after the first one only repackages. It is installed (``--no-deps``) into a fresh virtualenv in a temp
directory whose ``site-packages`` sees the project venv's dependencies through a ``.pth`` line (torch and Ray are
not downloaded again); that venv's own ``dspy_rl`` comes first on the path, and the checkout is not on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICK_PROFILE = {
    "CARGO_PROFILE_RELEASE_LTO": "off",
    "CARGO_PROFILE_RELEASE_CODEGEN_UNITS": "16",
    "CARGO_PROFILE_RELEASE_OPT_LEVEL": "1",
    "CARGO_TARGET_DIR": str(REPO / "rust_env" / "target" / "wheel"),
}


def test_pyproject_ships_every_config_and_env_file() -> None:
    """Fast guard: the package links reach the repository's conf/ and envs/, and pyproject puts them in the wheel."""
    import dspy_rl

    assert dspy_rl.conf_dir().resolve() == (REPO / "conf").resolve()
    assert dspy_rl.envs_dir().resolve() == (REPO / "envs").resolve()
    text = (REPO / "pyproject.toml").read_text()
    assert '{ path = "dspy_rl/conf/**/*", format = "wheel" }' in text
    assert '{ path = "dspy_rl/envs/data/**/*", format = "wheel" }' in text


def _build_wheel(out: Path) -> Path:
    maturin = shutil.which("maturin", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if maturin is None or shutil.which("cargo") is None:
        pytest.skip("maturin and cargo are needed to build the wheel (pip install maturin; rustup)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | QUICK_PROFILE
    proc = subprocess.run(
        [maturin, "build", "--release", "--interpreter", sys.executable, "-o", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("dspy_rl-*.whl")
    return wheel


def _venv(root: Path, wheel: Path) -> Path:
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the project venv's dependencies, after this venv's own packages (its .pth files are not processed, so the
    # checkout's editable dspy_rl stays out)
    Path(purelib, "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    return python


@pytest.mark.slow
def test_installed_wheel_trains_evaluates_and_submits_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in (
        "dspy_rl/conf/train.yaml",
        "dspy_rl/conf/env/easy.yaml",
        "dspy_rl/envs/data/catalog.json",
    ):
        assert shipped in names, shipped
    assert any(n.startswith("dspy_rl/envs/data/suites/") for n in names)

    python = _venv(tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "RAY_ADDRESS")}
    env["PATH"] = f"{python.parent}:{env.get('PATH', '')}"
    dspy_rl = str(python.parent / "dspy-rl")

    def run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc

    where = run(
        str(python), "-c", "import dspy_rl; print(dspy_rl.__file__, dspy_rl.source_checkout())"
    ).stdout
    assert where.startswith(str(tmp_path / "venv")) and where.split()[1] == "None", where

    small = ["env=easy", "env.num_envs=32", "algo.rollout_len=16", "total_env_steps=2048",
             "runtime.num_env_runners=0", "runtime.device=cpu", "logging.progress_bar=false", "logging.plot=false"]  # fmt: skip
    out = run(dspy_rl, "train", *small, "run_dir=run").stdout
    assert "completed: env_steps=2,048" in out
    ckpt = elsewhere / "run" / "checkpoints"
    assert (ckpt / "latest").exists()

    result = json.loads(
        run(
            dspy_rl,
            "eval",
            "policy=checkpoint",
            f"checkpoint={ckpt / (ckpt / 'latest').read_text().strip()}",
            "suite=easy",
            "episodes=64",
            "--json",
        )
        .stdout.strip()
        .splitlines()[-1]  # fmt: skip
    )
    assert result["episodes"] == 64 and result["suite"] == "easy"
    oracle = json.loads(
        run(dspy_rl, "eval", "suite=hard", "policy=oracle", "episodes=32", "--json").stdout.splitlines()[-1]
    )
    assert oracle["success_rate"] > 0.9

    # `dspy-rl submit` from the installed package: nothing is uploaded; the job runs the installed dspy-rl
    sys.path.insert(0, str(REPO / "tests"))
    from train._helpers import head_logs, ray_head

    with ray_head(str(python), env) as (address, head_env, ray_tmp):
        proc = subprocess.run(
            [
                dspy_rl,
                "submit",
                "--address",
                address,
                "--timeout",
                "300",
                "--",
                "train",
                *small,
                f"run_dir={elsewhere / 'job'}",
            ],  # fmt: skip
            cwd=elsewhere,
            env=head_env,
            capture_output=True,
            text=True,
            timeout=420,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + head_logs(ray_tmp)
    assert "completed: env_steps=2,048" in proc.stdout
    assert (elsewhere / "job" / "checkpoints" / "latest").exists()
