"""Fixtures for tests on a real three-node Docker Swarm (Docker-in-Docker hosts on this machine).

``swarm``: one swarm for the session (manager labelled hubfleet.role=hub, two workers
labelled hubfleet.role=user, attachable overlay ``hubfleet-overlay``), the singleuser image
loaded on every node. ``swarm_hub``: JupyterHub in a container on the manager, built from
the working tree's spawner; its spawner class comes from ``HUBFLEET_SWARM_SPAWNER_CLASS``
(default ``hubfleet-swarm`` once the SwarmSpawner exists, else ``hubfleet-docker``).
Everything is removed by label at the end, and leftovers of crashed runs at the start.
"""

import os
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from testbed.images import node_image, singleuser_image  # noqa: E402
from testbed.swarm import Swarm, SwarmHub, cleanup_by_label  # noqa: E402

TIMINGS = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "swarm: needs a real multi-node Docker Swarm (testbed.swarm)")


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("swarm test bed timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line("%-45s %6.1fs" % (what, seconds))


def _timed(what, function, *args, **kwargs):
    began = time.monotonic()
    result = function(*args, **kwargs)
    TIMINGS[what] = time.monotonic() - began
    return result


def default_spawner_class():
    names = {ep.name for ep in entry_points(group="jupyterhub.spawners")}
    return "hubfleet-swarm" if "hubfleet-swarm" in names else "hubfleet-docker"


@pytest.fixture(scope="session")
def singleuser():
    return _timed("singleuser image (build or cache)", singleuser_image)


@pytest.fixture(scope="session")
def swarm(singleuser):
    """A 1-manager, 2-worker swarm with the singleuser image on every node."""
    _timed("remove leftovers of crashed runs", cleanup_by_label)
    image = _timed("node image (build or cache)", node_image)
    swarm = Swarm(image=image)
    try:
        _timed("start 3-node swarm", swarm.start, workers=2)
        _timed("load singleuser image onto 3 nodes", swarm.load_image, singleuser)
        yield swarm
    finally:
        _timed("remove the swarm", swarm.stop)


@pytest.fixture(scope="session")
def swarm_hub(swarm, singleuser):
    """JupyterHub running in a container on the swarm's manager."""
    spawner_class = os.environ.get("HUBFLEET_SWARM_SPAWNER_CLASS") or default_spawner_class()
    hub = SwarmHub(swarm, singleuser, spawner_class=spawner_class)
    try:
        _timed("start the hub in the swarm (%s)" % spawner_class, hub.start)
        yield hub
    finally:
        hub.stop()
