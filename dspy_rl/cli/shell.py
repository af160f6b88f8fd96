"""``dspy-rl shell <subcommand>``: real commands in the namespace sandbox.

``dspy-rl shell exec --workspace DIR [--timeout S] [--env K=V ...] -- CMD ...`` runs one command in a fresh
sandbox around DIR and prints one JSON object (exit_code, stdout, stderr, truncated, timed_out, signal,
wall_ms, reason). Exit status: 0 when the command ran (whatever its own status), 2 on bad input, 3 when the
sandbox is unavailable here. ``dspy-rl shell check`` says whether this kernel allows the sandbox.
"""

from __future__ import annotations

import argparse
import json
import sys

from dspy_rl.cli.help import HELP_FLAGS, render, wants_help

SUBCOMMANDS = {
    "exec": "run one command in a fresh sandbox around --workspace and print a JSON result",
    "check": "check that this kernel allows the sandbox (user/mount/pid/net namespaces, seccomp, Landlock)",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        print(f"dspy-rl shell exec: {message} (see `dspy-rl shell exec --help`)", file=sys.stderr)
        raise SystemExit(2)


def _exec_parser() -> _Parser:
    p = _Parser(prog="dspy-rl shell exec", description="Run CMD in a fresh sandbox; print a JSON result.")
    p.add_argument("--workspace", required=True, help="directory mounted read-write at /workspace (the cwd)")
    p.add_argument("--timeout", type=float, default=10.0, help="wall-clock limit, seconds (default 10)")
    p.add_argument("--max-output", type=int, default=65536, help="bytes of stdout/stderr kept each")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="extra environment variable")
    p.add_argument("--stdin", action="store_true", help="pass this process's stdin to the command")
    return p


def _exec(argv: list[str]) -> int:
    from dspy_rl.shell.sandbox import Sandbox, SandboxLimits, SandboxUnavailable

    if "--" in argv:
        split = argv.index("--")
        opts, cmd = argv[:split], argv[split + 1 :]
    else:
        opts, cmd = argv, []
    p = _exec_parser()
    if wants_help(opts):
        print(render(p.format_help()))
        return 0
    ns = p.parse_args(opts)
    if not cmd:
        p.error("no command given; put it after `--`, e.g. `dspy-rl shell exec --workspace . -- ls -la`")
    env = {}
    for kv in ns.env:
        if "=" not in kv or kv.startswith("="):
            p.error(f"--env {kv!r} must look like NAME=value")
        k, v = kv.split("=", 1)
        env[k] = v
    try:
        limits = SandboxLimits(timeout_s=ns.timeout, max_output_bytes=ns.max_output)
        stdin = sys.stdin.buffer.read() if ns.stdin else None
        with Sandbox(ns.workspace, limits, env=env) as sb:
            result = sb.run(cmd, stdin=stdin)
    except SandboxUnavailable as exc:
        print(f"dspy-rl shell exec: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"dspy-rl shell exec: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_json()))
    return 0


def _check(argv: list[str]) -> int:
    from dspy_rl.shell.sandbox import SandboxUnavailable, check_support

    if wants_help(argv):
        print(render(f"usage: dspy-rl shell check\n\n{SUBCOMMANDS['check']}"))
        return 0
    if argv:
        print(f"dspy-rl shell check: takes no arguments, got {' '.join(argv)}", file=sys.stderr)
        return 2
    try:
        abi = check_support()
    except SandboxUnavailable as exc:
        print(f"dspy-rl shell check: {exc}", file=sys.stderr)
        return 3
    landlock = f"Landlock ABI {abi}" if abi else "no Landlock (kernel lacks it; seccomp and namespaces apply)"
    print(f"sandbox available: user/mount/pid/net/ipc/uts namespaces, seccomp, {landlock}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in HELP_FLAGS:
        print(render(__doc__, subcommands=SUBCOMMANDS))
        return 0
    sub, rest = argv[0], argv[1:]
    if sub == "exec":
        return _exec(rest)
    if sub == "check":
        return _check(rest)
    print(
        f"dspy-rl shell: unknown subcommand {sub!r}; choose one of {', '.join(SUBCOMMANDS)}", file=sys.stderr
    )
    return 2
