"""Sandbox tests need a kernel that allows user namespaces; elsewhere they skip with the kernel's reason."""

from __future__ import annotations

import pytest

from dspy_rl.shell.sandbox import SandboxUnavailable, check_support


@pytest.fixture(scope="session")
def sandbox_support() -> int:
    """The Landlock ABI in force; skips when the kernel refuses the namespaces (any other failure is an error)."""
    try:
        return check_support()
    except SandboxUnavailable as exc:
        if "user namespaces are unavailable" in str(exc):
            pytest.skip(f"sandbox unavailable on this kernel: {exc}")
        raise
