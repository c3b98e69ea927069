"""A local Ray cluster for the batch tests: ``ray.init(num_cpus=2)`` in the test process,
once per session; commands run in process join it (``--ray auto`` finds it initialised),
and child processes reach it by its GCS address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
