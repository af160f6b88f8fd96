"""``dspy-rl submit [--address URL] [--no-wait] -- <command> [overrides...]``: run a command as a Ray job.

Submits ``python -m dspy_rl <command> ...`` through Ray's JobSubmissionClient, follows the job's logs and returns
its final status as the exit code (0 = SUCCEEDED). From a source checkout the checkout is the job's ``working_dir``
(code, configs, env data and the built Rust extension travel with it); from an installed dspy-rl nothing is
uploaded unless ``--working-dir`` is given: the job runs the dspy-rl installed on the cluster's nodes (the wheel
holds its configs and env data).
The equivalent plain Ray command is::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m dspy_rl train runtime=cluster

(``--working-dir .`` honours .gitignore, so it leaves out the built extension that ``dspy-rl submit`` ships.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence

from dspy_rl import source_checkout
from dspy_rl.cli.help import wants_help

log = logging.getLogger(__name__)
# The job ships the built Rust extension (dspy_rl/_rust_env*.so, git-ignored), so .gitignore is not applied
# to the upload; everything else it ignores is excluded here.
_EXCLUDES = [
    ".venv",
    ".git",
    "runs",
    "outputs",
    "bench/results",
    "rust_env/target",
    "wandb",
    "**/__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".cache",
    "*.egg-info",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dspy-rl submit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
        help="Ray dashboard / job server address (default: $RAY_ADDRESS or http://127.0.0.1:8265)",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="print the job id and return without following logs"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up following after this many seconds"
    )
    parser.add_argument(
        "--working-dir",
        default=None,
        help="directory shipped as the job's working_dir (default: the source checkout; none when installed)",
    )
    return parser


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    if "--" not in argv:
        raise SystemExit(
            "dspy-rl submit: put the command after `--`, e.g. `dspy-rl submit -- train total_env_steps=1e5`"
        )
    split = argv.index("--")
    parser = _parser()
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        raise SystemExit("dspy-rl submit: nothing after `--`; give a command such as `train`")
    from dspy_rl.cli import COMMANDS

    if command[0] not in COMMANDS or command[0] == "submit":
        raise SystemExit(
            f"dspy-rl submit: unknown command {command[0]!r}; choose one of "
            f"{', '.join(c for c in COMMANDS if c != 'submit')}"
        )
    return args, command


def entrypoint(command: Sequence[str]) -> str:
    return "python -m dspy_rl " + " ".join(shlex.quote(c) for c in command)


def runtime_env(working_dir: str | None) -> dict[str, object]:
    """The job's runtime_env: ``working_dir`` (default: the source checkout, if running from one) with the
    excludes, or no upload at all for an installed dspy-rl."""
    env: dict[str, object] = {
        "env_vars": {"RAY_USAGE_STATS_ENABLED": "0", "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    }
    checkout = source_checkout()
    directory = working_dir or (str(checkout) if checkout is not None else None)
    if directory is not None:
        env |= {"working_dir": directory, "excludes": _EXCLUDES}
    return env


def submit(
    command: Sequence[str],
    address: str,
    working_dir: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
) -> tuple[str, str]:
    """Submit, optionally follow the logs; returns (job_id, final or current status)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    os.environ["RAY_RUNTIME_ENV_IGNORE_GITIGNORE"] = "1"
    client = JobSubmissionClient(address)
    deadline = time.monotonic() + 240
    while True:
        try:
            job_id = client.submit_job(entrypoint=entrypoint(command), runtime_env=runtime_env(working_dir))
            break
        except RuntimeError as exc:  # a head node that just started has no job agent registered yet
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            log.info("the cluster's job agent is not up yet; retrying")
            time.sleep(2)
    log.info("submitted %s: %s", job_id, entrypoint(command))
    if not wait:
        return job_id, str(client.get_job_status(job_id))

    async def follow() -> None:
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    try:
        asyncio.run(asyncio.wait_for(follow(), timeout))
    except asyncio.TimeoutError:
        log.warning("stopped following %s after %.0fs; the job keeps running", job_id, timeout)
    deadline = time.monotonic() + 30
    status = client.get_job_status(job_id)
    while not status.is_terminal() and time.monotonic() < deadline and timeout is None:
        time.sleep(0.5)
        status = client.get_job_status(job_id)
    return job_id, str(status.value if isinstance(status, JobStatus) else status)


def main(argv: Sequence[str]) -> int:
    if wants_help(argv[: list(argv).index("--")] if "--" in argv else argv):
        from dspy_rl.cli.help import render

        print(render(_parser().format_help()))
        return 0
    args, command = _parse(argv)
    job_id, status = submit(
        command, args.address, args.working_dir, wait=not args.no_wait, timeout=args.timeout
    )
    print(f"job {job_id}: {status}")
    return (
        0 if status in ("SUCCEEDED", "PENDING", "RUNNING") and (args.no_wait or status == "SUCCEEDED") else 1
    )
