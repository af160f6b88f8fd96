"""Start Ray for a dspy-rl command: a local instance listens on 127.0.0.1 only, unless told otherwise.

``ray.init()`` on Linux binds the GCS, the raylet (node manager and object manager), the dashboard agent, the
runtime-env agent and every worker's gRPC server to all interfaces, and passing ``_node_ip_address="127.0.0.1"``
alone does not change that: Ray 2.60 replaces a loopback node address with the machine's routable IP
(``ray._private.services.resolve_ip_for_localhost``) unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is off, which
makes ``get_node_ip_address()`` answer 127.0.0.1. Every Ray gRPC server then listens on 127.0.0.1 (it binds
loopback when its node address is 127.0.0.1), the agents bind the node address, and the dashboard stays off (or
on 127.0.0.1 when asked for). The variable is exported so that the processes Ray starts inherit it.

One listener ignores the node address: each Ray Serve replica's inter-deployment gRPC server binds ``[::]:0``
(``ray.serve._private.replica``). A worker setup hook (:func:`loopback_worker_setup`, installed through the job's
``runtime_env``) rewrites wildcard gRPC bind addresses to 127.0.0.1 in every worker of the job, Serve's replicas
and proxy included.

A cluster address (the argument, or ``RAY_ADDRESS`` as inside ``ray job submit``) connects to that cluster and
changes nothing; ``node_ip`` starts a local instance on that address (to be reachable from other machines).
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: Ray's switch for "clusters of several machines"; off, it resolves the node address to loopback.
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _loopback_only() -> None:
    """Make this process (and the Ray processes it starts) resolve the local node address to 127.0.0.1."""
    from ray._private import ray_constants

    os.environ[_CLUSTER_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


_WILDCARDS = ("[::]:", "0.0.0.0:", "[::0]:")


def _loopback_address(address: str) -> str:
    for wildcard in _WILDCARDS:
        if address.startswith(wildcard):
            return LOOPBACK + ":" + address[len(wildcard) :]
    return address


def loopback_worker_setup() -> None:
    """Ray worker setup hook: gRPC servers that Ray Serve binds to a wildcard address bind 127.0.0.1 instead."""
    import sys

    from ray._common import tls_utils

    original = tls_utils.add_port_to_grpc_server
    if getattr(original, "_dspy_rl_loopback", False):
        return

    def add_port_to_grpc_server(server: Any, address: str) -> int:
        return original(server, _loopback_address(address))

    add_port_to_grpc_server._dspy_rl_loopback = True  # type: ignore[attr-defined]
    tls_utils.add_port_to_grpc_server = add_port_to_grpc_server
    replica = sys.modules.get("ray.serve._private.replica")
    if replica is not None:
        replica.add_port_to_grpc_server = add_port_to_grpc_server  # type: ignore[attr-defined]
    try:
        from ray.serve._private import default_impl
    except ImportError:  # Serve not installed
        return
    original_grpc = default_impl.add_grpc_address

    def add_grpc_address(grpc_server: Any, server_address: str) -> None:
        original_grpc(grpc_server, _loopback_address(server_address))

    default_impl.add_grpc_address = add_grpc_address


def init_ray(address: str | None = None, node_ip: str | None = None, **ray_init_kwargs: Any) -> None:
    """``ray.init`` for dspy-rl commands (a no-op when Ray is already initialized in this process).

    * ``address`` (or ``RAY_ADDRESS``) given: connect to that cluster with ``ray_init_kwargs``.
    * ``node_ip`` given: start a local instance whose node address is ``node_ip``.
    * neither: start a local instance bound to 127.0.0.1 with the dashboard off (``include_dashboard=True``
      puts it on 127.0.0.1 unless ``dashboard_host`` says otherwise).
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = dict(ray_init_kwargs)
    if address is None:
        kwargs.setdefault("include_dashboard", False)
        if node_ip is None:
            _loopback_only()
            kwargs["_node_ip_address"] = LOOPBACK
            runtime_env = dict(kwargs.get("runtime_env") or {})
            runtime_env.setdefault("worker_process_setup_hook", f"{__name__}.loopback_worker_setup")
            kwargs["runtime_env"] = runtime_env
            if kwargs["include_dashboard"]:
                kwargs.setdefault("dashboard_host", LOOPBACK)
        else:
            kwargs["_node_ip_address"] = node_ip
        log.info("starting a local Ray instance on %s", kwargs["_node_ip_address"])
    ray.init(address=address, **kwargs)
