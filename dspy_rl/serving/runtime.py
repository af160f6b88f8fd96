"""Run a Serve application from a command: loopback Ray, bearer token from the environment, clean SIGTERM.

:func:`serve_forever` starts (or joins) Ray, deploys, waits until Ctrl-C or SIGTERM, then deletes the Serve
applications and shuts Ray down, so a stopped server leaves no Ray process behind when it started Ray itself.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def resolve_token(auth_token_env: str | None) -> str | None:
    """The bearer token named by ``auth_token_env`` (ValueError if that variable is unset or empty)."""
    if not auth_token_env:
        return None
    token = os.environ.get(auth_token_env, "")
    if not token:
        raise ValueError(
            f"auth_token_env={auth_token_env!r} but that environment variable is empty; export it or set "
            "auth_token_env=null"
        )
    return token


def start_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Initialize Ray on loopback (or join ``address``); True when this call started a local instance."""
    import ray

    if ray.is_initialized():
        return False
    from dspy_rl.utils.ray_local import init_ray

    kwargs = {"num_cpus": num_cpus} if (num_cpus and not address) else {}
    init_ray(address, log_to_driver=False, **kwargs)  # a local instance listens on 127.0.0.1 only
    return not address


def serve_forever(deploy: Callable[[], Any], address: str | None, blocking: bool, banner: str) -> int:
    """Deploy with ``deploy()``; when ``blocking``, wait for Ctrl-C/SIGTERM and tear everything down."""
    from ray import serve

    from dspy_rl.utils.ray_shutdown import shutdown_ray

    started = start_ray(address)
    stop = threading.Event()
    previous = {}
    if blocking:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        deploy()
        print(banner, flush=True)
        if blocking:
            while not stop.wait(0.5):
                pass
    finally:
        if blocking:
            try:
                serve.shutdown()
            except Exception as exc:  # still shut Ray down below
                logger.warning("serve.shutdown failed: %s", exc)
            if started:
                shutdown_ray()  # also ends the agents the raylet spawned (they can outlive ray.shutdown())
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0
