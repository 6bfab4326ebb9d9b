"""Fixtures for tests against the real Docker engine, a real JupyterHub and a real CHP.

The test bed (testbed/) must be bootstrapped first: scripts/run-tests.sh does it.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from testbed.hub import Hub  # noqa: E402
from testbed.images import singleuser_image  # noqa: E402

TEST_GPU = "GPU-hubfleet-test-0"


@pytest.fixture(scope="session")
def image():
    return singleuser_image()


@pytest.fixture(scope="session")
def hub(image, tmp_path_factory):
    """One hub for the session; tests use distinct user names."""
    # One GPU id the filter allows (there is no GPU here: the engine refuses to start it).
    hub = Hub(tmp_path_factory.mktemp("hub"), image=image, filter_policy={"gpus": [TEST_GPU]})
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        hub.cleanup()


@pytest.fixture
def docker_client(hub):
    return hub.docker
