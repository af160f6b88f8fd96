"""Containment of the namespace sandbox, tested by attack (issue 15 item 6).

Every attack runs inside a real sandbox; each test checks that the host is unchanged and that the result says
why the attack ended. A second sandbox runs alongside to show other envs are unaffected, and the module ends
by checking the process table: no process of any sandbox is left.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from dspy_rl.shell.sandbox import ExecResult, Sandbox, SandboxLimits, run_batch

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux namespaces only")

#: Unusual durations that mark this suite's sleeps in the host process table.
MARK = "4242.5"
REPO = Path(__file__).resolve().parents[2]


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _new_descendants(before: set[int]) -> list[str]:
    """Processes under this one that were not there before, leaving out Ray's (a Ray instance started by other
    tests of the same session is a child of pytest, and it may start workers at any time)."""
    new = [p for p in _descendants(os.getpid()) if p not in before]
    ray = ("/ray/", "ray::", "raylet", "gcs_server")
    return [
        f"{p}: {c}"
        for p in new
        if not any(r in (c := _cmdline(p)) for r in ray) and Path(f"/proc/{p}").exists()
    ]


def _marked_processes() -> list[str]:
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if MARK in cmd and "pytest" not in cmd:
            found.append(f"{d}: {cmd}")
    return found


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, sandbox_support: int):
    """A workspace plus host-side files next to it that no sandbox may read or change."""
    base = tmp_path_factory.mktemp("attack")
    ws = base / "ws"
    ws.mkdir()
    (ws / "data.txt").write_text("workspace data\n")
    secret = base / "secret.txt"
    secret.write_text("TOP-SECRET-HOST-FILE\n")
    # A symlink planted in the workspace pointing at a host file outside it.
    (ws / "planted").symlink_to(secret)
    before = set(_descendants(os.getpid()))
    yield {"base": base, "ws": ws, "secret": secret, "before": before}
    # The process-table check: nothing of any sandbox survives the suite.
    time.sleep(0.2)
    assert _marked_processes() == []
    assert _new_descendants(before) == []


@pytest.fixture()
def sb(host):
    box = Sandbox(host["ws"], SandboxLimits(timeout_s=10.0, mem_mb=512, max_procs=64))
    yield box
    box.close()
    assert _new_descendants(host["before"]) == []


def _sandbox_pids(box: Sandbox) -> int:
    """Processes visible in the sandbox's pid namespace while one command (python3) runs."""
    r = box.run(["python3", "-c", "import os; print(sum(p.isdigit() for p in os.listdir('/proc')))"])
    return int(r.stdout)


def _sh(box: Sandbox, cmd: str, **kw) -> ExecResult:
    return box.run(cmd, **kw)


def test_network_is_absent(sb, host):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    try:
        code = (
            "import socket\n"
            "for fam, addr in [(socket.AF_INET, ('127.0.0.1', PORT)), (socket.AF_INET6, ('::1', PORT))]:\n"
            "    try:\n"
            "        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2); s.connect(addr)\n"
            "        print('CONNECTED')\n"
            "    except OSError as e:\n"
            "        print('refused', e.errno)\n"
            "try:\n"
            "    print(socket.getaddrinfo('pypi.org', 443))\n"
            "except OSError as e:\n"
            "    print('dns failed', e)\n"
        ).replace("PORT", str(port))
        r = sb.run(["python3", "-c", code])
        assert r.exit_code == 0, r
        assert "CONNECTED" not in r.stdout and r.stdout.count("refused") == 2
        assert "dns failed" in r.stdout
        # bash's /dev/tcp and curl fail too; the listener saw no connection.
        r = _sh(
            sb, f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED; curl -sS -m 2 http://127.0.0.1:{port}/"
        )
        assert "CONNECTED" not in r.stdout and r.exit_code != 0
        with pytest.raises(socket.timeout):
            srv.accept()
        # Only the loopback device exists, and it is down.
        r = _sh(sb, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")
        assert r.stdout.split() == ["lo"]
    finally:
        srv.close()


def test_host_files_are_not_readable(sb, host):
    targets = [
        "/etc/shadow",
        "/etc/gshadow",
        "/root",
        "/home",
        str(host["secret"]),
        str(REPO / "README.md"),
        str(REPO),
        "/work",
        "/proc/1/root/etc/shadow",
        "/var/log",
    ]
    for path in targets:
        r = _sh(sb, f"cat {path} 2>&1 || ls -la {path} 2>&1")
        assert r.exit_code != 0, (path, r)
        assert "TOP-SECRET" not in r.stdout
    for cmd in [
        "cat ../secret.txt",
        "cat planted",
        "cat /proc/self/root/../secret.txt",
        "cat /proc/1/cwd/../secret.txt",
    ]:
        r = _sh(sb, cmd)
        assert r.exit_code != 0 and "TOP-SECRET" not in r.stdout, (cmd, r)
    # The sandbox's /etc is generated: no host users, no shadow file.
    r = _sh(sb, "cat /etc/passwd")
    assert "sandbox:x:1000" in r.stdout and len(r.stdout.splitlines()) == 3


def test_writes_outside_the_workspace_fail(sb, host):
    before = sorted(p.name for p in host["base"].iterdir())
    attempts = [
        "echo x > /etc/evil",
        "echo x > /usr/evil",
        "echo x > /evil",
        "echo x > ../evil",
        "echo x > ../../evil",
        "mkdir /workspace/../evil",
        "echo x > /proc/self/root/evil",
        "echo x > /proc/1/root/evil",
        "echo x > planted",
        "ln -s /etc/passwd l1 && echo x >> l1",
        "ln /etc/passwd hard",
        "ln /usr/bin/sh hard2 && echo x >> hard2",
        "cp /bin/true /usr/bin/evil",
        "touch /proc/sys/kernel/evil",
        "echo 1 > /proc/sys/kernel/sysrq",
        "echo b > /proc/sysrq-trigger",
        "mount -t tmpfs none /tmp",
        "echo x > /dev/evil",
    ]
    for cmd in attempts:
        r = _sh(sb, cmd)
        assert r.exit_code != 0, (cmd, r)
    assert host["secret"].read_text() == "TOP-SECRET-HOST-FILE\n"
    assert sorted(p.name for p in host["base"].iterdir()) == before
    assert not Path("/evil").exists() and not Path("/etc/evil").exists()
    # Writing inside the workspace and /tmp works, and is visible on the host (workspace only).
    r = _sh(sb, "mkdir -p sub && echo ok > sub/f && echo t > /tmp/t && cat /tmp/t sub/f")
    assert r.exit_code == 0 and r.stdout == "t\nok\n"
    assert (host["ws"] / "sub" / "f").read_text() == "ok\n"


def test_fork_bomb_is_contained_and_others_are_unaffected(host):
    other_ws = host["base"] / "other"
    other_ws.mkdir(exist_ok=True)
    other = Sandbox(other_ws)
    stop = threading.Event()
    errors: list[str] = []

    def neighbour() -> None:
        i = 0
        while not stop.is_set():
            r = other.run(["echo", str(i)])
            if r.stdout != f"{i}\n":
                errors.append(repr(r))
            i += 1

    t = threading.Thread(target=neighbour)
    t.start()
    try:
        with Sandbox(host["ws"], SandboxLimits(timeout_s=3.0, max_procs=32)) as box:
            r = box.run("bomb() { bomb | bomb & }; bomb; sleep " + MARK)
            assert r.timed_out and r.signal == 9 and "timeout" in (r.reason or "")
            assert _sandbox_pids(box) == 2  # only the init and the counting command itself
        # The host can still start processes.
        assert subprocess.run(["true"]).returncode == 0
    finally:
        stop.set()
        t.join()
        other.close()
    assert errors == []


def test_memory_bomb_fails_inside(host):
    with Sandbox(host["ws"], SandboxLimits(mem_mb=256)) as box:
        r = box.run(["python3", "-c", "b = bytearray(2 << 30)"])
        assert r.exit_code == 1 and "MemoryError" in r.stderr
        r = box.run(["python3", "-c", "x = []\nwhile True: x.append(bytearray(16 << 20))"])
        assert r.exit_code == 1 and "MemoryError" in r.stderr
        # /tmp is a size-capped tmpfs: filling it fails with ENOSPC, not host memory exhaustion.
        r = box.run("head -c 200M /dev/zero > /tmp/fill")
        assert r.exit_code != 0 or r.signal is not None


def test_cpu_spin_hits_the_cpu_limit_and_the_timeout(host):
    with Sandbox(host["ws"], SandboxLimits(cpu_s=1, timeout_s=20.0)) as box:
        r = box.run("while :; do :; done")
        assert r.signal in (24, 9) and not r.timed_out and "CPU" in (r.reason or ""), r
    with Sandbox(host["ws"], SandboxLimits(cpu_s=60, timeout_s=1.0)) as box:
        r = box.run("while :; do :; done")
        assert r.timed_out and r.signal == 9 and 900 <= r.wall_ms


def test_children_ignoring_sigterm_die_with_the_command(host):
    with Sandbox(host["ws"], SandboxLimits(timeout_s=1.0)) as box:
        r = box.run(f"trap '' TERM HUP; (trap '' TERM HUP; exec sleep {MARK}) & sleep {MARK}")
        assert r.timed_out
        assert _marked_processes() == []
        # A daemonised child of a command that exits at once is killed when the command ends.
        r = box.run(f"setsid nohup sh -c 'trap \"\" TERM; sleep {MARK}' >/dev/null 2>&1 & echo started")
        assert r.exit_code == 0 and r.stdout == "started\n"
        assert _marked_processes() == []
        assert _sandbox_pids(box) == 2


def test_gigabytes_of_output_are_capped(host):
    with Sandbox(host["ws"], SandboxLimits(max_output_bytes=10_000, timeout_s=30.0)) as box:
        r = box.run("head -c 4G /dev/zero | tr '\\0' x; echo never >&2")
        assert r.truncated and len(r.stdout) < 10_200 and "truncated" in r.stdout
        assert r.stdout.startswith("x" * 10_000)
        r = box.run("yes; echo done")
        assert r.truncated and r.wall_ms < 30_000


def test_setuid_binaries_give_nothing(sb):
    r = _sh(sb, "ls -l /usr/bin/su /usr/bin/passwd")
    assert r.exit_code == 0 and "rws" in r.stdout  # the setuid bit is there...
    r = _sh(sb, "su -c id root </dev/null; passwd -S root; newgrp root </dev/null; echo end")
    assert "uid=0" not in r.stdout
    r = _sh(sb, "grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd|Seccomp):' /proc/self/status")
    fields = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2"
    assert (
        int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    )
    r = _sh(sb, "cp /usr/bin/id ./myid && chmod 4755 ./myid; ./myid -u")
    assert r.stdout.strip().splitlines()[-1] == "1000"


def test_ptrace_unshare_and_killing_the_parent_fail(sb):
    code = (
        "import ctypes, os, signal\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('ptrace', libc.ptrace(16, 1, 0, 0), ctypes.get_errno())\n"  # PTRACE_ATTACH to the init
        "print('ptrace_ppid', libc.ptrace(16, os.getppid(), 0, 0), ctypes.get_errno())\n"
        "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"  # CLONE_NEWUSER
        "try:\n    os.kill(1, signal.SIGKILL); print('kill sent')\n"
        "except OSError as e:\n    print('kill failed', e.errno)\n"
    )
    r = sb.run(["python3", "-c", code])
    out = r.stdout.splitlines()
    assert out[0] == "ptrace -1 1" and out[1] == "ptrace_ppid -1 1" and out[2] == "unshare -1 1", r
    # SIGKILL to the sandbox's init is ignored inside its pid namespace; kill -1 only reaches the command's own tree.
    r = _sh(sb, "kill -9 1; kill -9 -1; echo survived")
    assert r.signal == 9 or r.stdout == "survived\n"
    assert _sh(sb, "echo still-here").stdout == "still-here\n"
    # The host's processes are invisible: pid 1 inside is the sandbox init.
    r = _sh(sb, f"kill -0 {os.getpid()} 2>/dev/null && echo visible; ls /proc | grep -c '^[0-9]'")
    assert "visible" not in r.stdout or os.getpid() <= 3


def test_batch_of_fresh_sandboxes_and_episode_sandboxes(host):
    jobs = [(host["ws"], ["cat", "data.txt"]) for _ in range(6)]
    with Sandbox(host["ws"]) as box:
        jobs += [(box, f"echo {i} >> log.txt; wc -l < log.txt") for i in range(4)]
        res = run_batch(jobs, workers=3)
    assert [r.stdout for r in res[:6]] == ["workspace data\n"] * 6
    assert sorted(int(r.stdout) for r in res[6:]) == [1, 2, 3, 4]
    (host["ws"] / "log.txt").unlink()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop to nobody"
)
def test_runs_as_an_unprivileged_user(sandbox_support):
    """As `nobody` (where unprivileged user namespaces are enabled), through Debian's python3 (same ABI)."""
    sys_py = "/usr/bin/python3"
    probe = subprocess.run(
        [sys_py, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    if probe.returncode != 0 or probe.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip("no system python3 with this interpreter's ABI")
    base = Path(tempfile.mkdtemp(prefix="sbx-unpriv-", dir="/tmp"))  # pytest's tmp_path is 0700 root
    base.chmod(0o755)
    ws = base / "ws"
    ws.mkdir()
    os.chown(ws, 65534, 65534)
    code = (
        "import os\nfrom dspy_rl.shell.sandbox import Sandbox\n"
        "assert os.geteuid() == 65534\n"
        "with Sandbox(WS) as sb:\n"
        "    r = sb.run('id -u; echo hi > f; grep -E \"^(CapEff|NoNewPrivs|Seccomp):\" /proc/self/status')\n"
        "print(r.stdout, end='')\n"
    ).replace("WS", repr(str(ws)))
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys_py, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "HOME": "/tmp", "PATH": "/usr/bin:/bin"},
    )
    if "user namespaces are unavailable" in r.stderr:
        pytest.skip("unprivileged user namespaces are disabled on this kernel")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1000", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"]
    assert (ws / "f").stat().st_uid == 65534
    shutil.rmtree(base)


def test_a_sandbox_inside_the_sandbox_is_refused_with_the_reason(host):
    """The refusal path: inside a sandbox, seccomp denies unshare(), so starting a nested sandbox must fail
    with SandboxUnavailable naming what is missing (never run the command unsandboxed)."""
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    if probe.returncode != 0 or probe.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip("no system python3 with this interpreter's ABI")
    import dspy_rl

    pkg = Path(dspy_rl.__file__).parent
    ws = host["base"] / "nested"
    (ws / "dspy_rl" / "shell").mkdir(parents=True)
    shutil.copy(pkg / "__init__.py", ws / "dspy_rl" / "__init__.py")
    shutil.copy(pkg / "shell" / "__init__.py", ws / "dspy_rl" / "shell" / "__init__.py")
    shutil.copy(pkg / "shell" / "sandbox.py", ws / "dspy_rl" / "shell" / "sandbox.py")
    for so in pkg.glob("_rust_env*.so"):
        shutil.copy(so, ws / "dspy_rl" / so.name)
    (ws / "inner").mkdir()
    code = (
        "from dspy_rl.shell.sandbox import Sandbox, SandboxUnavailable\n"
        "try:\n    Sandbox('/workspace/inner').run('echo RAN')\n    print('NOT REFUSED')\n"
        "except SandboxUnavailable as e:\n    print('refused:', e)\n"
    )
    with Sandbox(ws) as box:
        r = box.run(["python3", "-c", code])
    assert r.exit_code == 0, r
    assert r.stdout.startswith("refused:") and "unshare" in r.stdout and "RAN" not in r.stdout, r.stdout
    shutil.rmtree(ws)


def test_killing_the_host_process_kills_its_sandboxes(host):
    """SIGKILL to the process that owns a sandbox while a command runs: the sandbox's init sees its control
    socket close and kills everything in the sandbox."""
    code = (
        "from dspy_rl.shell.sandbox import Sandbox\n"
        f"sb = Sandbox({str(host['ws'])!r})\n"
        "print('up', flush=True)\n"
        f"sb.run('sleep {MARK}', timeout_s=60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert owner.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 20
        while not _marked_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _marked_processes(), "the command never started"
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    while _marked_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _marked_processes() == []
