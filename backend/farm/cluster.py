"""Connect to Ray: a local instance sized to this machine, or an existing cluster.

Local instances are locked down: every Ray socket on 127.0.0.1 (Ray's switch for its single-machine
mode, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, read when `ray` is first imported; verified on Ray
2.60), no dashboard unless asked, token authentication off so that no token file is written to
`~/.ray` (nothing else can reach a loopback-only instance), no usage reporting, a small object store
(workers send back only small progress maps).

With an address (`auto`, `HOST:PORT`, `ray://HOST:10001`) the cluster's own settings apply.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

OBJECT_STORE_BYTES = 256 * 1024 * 1024
LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # loopback only
    "RAY_AUTH_MODE": "disabled",  # else Ray 2.60 writes ~/.ray/auth_token for a local instance
    "RAY_USAGE_STATS_ENABLED": "0",
}


class ClusterError(RuntimeError):
    """Ray could not be started or joined; the message says what to do."""


@dataclass(frozen=True)
class Resources:
    """What the connected cluster offers: CPUs and GPUs in total, and whether we started it."""

    cpus: float
    gpus: float
    started_here: bool
    node_ip: str


def import_ray(local: bool):
    """Import ray, with the local lock-down environment when this process will start the instance."""
    if local:  # the loopback switch is read when ray is first imported, the others when it starts
        for name, value in LOCAL_ENV.items():
            os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError:
        raise ClusterError("`human3r batch` needs Ray: pip install -e '.[farm]' in the project checkout (or pip install "
                           "'ray==2.60.*')") from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
            dashboard: bool = False) -> Resources:
    """Join the cluster at `address`, or start a local instance (None); reuse a connection this
    process already holds.

    Args:
        address: None (local), 'auto' (the cluster this machine belongs to), 'HOST:PORT' or 'ray://...'.
        num_cpus, num_gpus: local instance only; default all cores and the CUDA GPUs torch sees.
        dashboard: local instance only: start the dashboard (on 127.0.0.1:8265).
    Raises:
        ClusterError: Ray is missing, or the cluster cannot be reached.
    """
    ray = import_ray(local=address is None)
    started = False
    if not ray.is_initialized():
        try:
            if address is None:
                ray.init(address="local", num_cpus=num_cpus or _cores(), num_gpus=_local_gpus(num_gpus),
                         include_dashboard=dashboard, dashboard_host="127.0.0.1",
                         object_store_memory=OBJECT_STORE_BYTES, log_to_driver=False,
                         logging_level=logging.WARNING)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except ImportError as exc:  # ray:// addresses use Ray Client, a separate extra
            raise ClusterError(f"{address}: {exc}; install pip install 'ray[client]==2.60.*'") from None
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
            raise ClusterError(f"cannot start or join {where}: {exc}") from None
        started = address is None
    res = ray.cluster_resources()
    return Resources(cpus=float(res.get("CPU", 0)), gpus=float(res.get("GPU", 0)), started_here=started,
                     node_ip=ray.util.get_node_ip_address())


def disconnect(resources: Resources) -> None:
    """Shut a local instance down (an external cluster keeps running)."""
    ray = import_ray(local=False)
    if resources.started_here and ray.is_initialized():
        ray.shutdown()


def _cores() -> int:
    from backend.engine.stream import available_cores

    return available_cores()


def _local_gpus(requested: int | None) -> int:
    if requested is not None:
        return requested
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
