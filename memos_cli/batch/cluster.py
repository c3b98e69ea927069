"""Joining a Ray cluster, or starting one on this machine, with a bounded wait.

``ADDRESS`` is ``local`` (a cluster of this machine's CPUs, started for the command and
stopped after it), ``auto`` (the cluster ``RAY_ADDRESS`` or ``ray start`` on this machine
names), ``HOST:PORT`` (a cluster's GCS address) or ``ray://HOST:PORT`` (Ray Client). A
cluster this process already joined (a test fixture's ``ray.init``) is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from memos_cli.config import remote_timeout as timeout_s
from memos_cli.errors import RemoteError, UsageError


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise UsageError("--ray needs Ray: pip install 'memos-cli[ray]' (ray[data], "
                         "lance-ray)") from e
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def check_address(address: str) -> None:
    """Refuse a malformed ``ADDRESS`` (see the module docstring).

    Raises:
        UsageError: not ``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``.
    """
    if address in ("local", "auto"):
        return
    if _host_port(address) is None:
        raise UsageError(f"--ray {address!r}: give local, auto, HOST:PORT or ray://HOST:PORT")


@contextlib.contextmanager
def joined(address: str) -> Iterator[Any]:
    """The ``ray`` module, connected to the cluster ``address`` names for the block.

    A ``HOST:PORT`` that does not accept a connection within ``MEMOS_REMOTE_TIMEOUT`` seconds
    is refused before Ray is asked (Ray itself would retry for a minute or more).

    Raises:
        UsageError: a malformed address, or Ray is not installed.
        RemoteError: the cluster does not answer, or Ray refuses to join it.
    """
    check_address(address)
    ray = _ray()
    import logging

    if not logging.getLogger("memos").isEnabledFor(logging.INFO):  # --verbose shows them
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if ray.is_initialized():
        yield ray
        return
    hp = _host_port(address)
    if hp is not None:
        try:
            with socket.create_connection(hp, timeout=timeout_s()):
                pass
        except OSError as e:
            raise RemoteError(f"no Ray cluster answers at {hp[0]}:{hp[1]} ({e})",
                              path=address) from e
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "configure_logging": False}
    if address == "local":
        kw["num_cpus"] = os.cpu_count() or 1
    else:
        kw["address"] = address
    try:
        ray.init(**kw)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        raise RemoteError(f"cannot join the Ray cluster: {str(e).strip().splitlines()[0]}",
                          path=address) from e
    try:
        yield ray
    finally:
        ray.shutdown()


def cpus(ray: Any) -> int:
    """CPUs the cluster has (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def gpus(ray: Any) -> int:
    """GPUs the cluster has."""
    return int(ray.cluster_resources().get("GPU", 0))
