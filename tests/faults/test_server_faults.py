"""Fault drills on one host: a user's server dies, the hub is killed mid-burst.

Real components: a JupyterHub process with configurable-http-proxy (testbed/hub.py),
user servers as containers of the singleuser image on this machine's engine. The hub
polls its spawners only every 60 s here, so a hub that notices a death within seconds
can only have learned it from the spawner's Docker events.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from testbed.hub import Hub  # noqa: E402
from testbed.images import singleuser_image  # noqa: E402
from testbed.drills import login, stopped_reason_on, visit  # noqa: E402

POLL_INTERVAL = 60
# Far below the poll interval: only the events path can be this quick.
NOTICE_WITHIN = 15
ORPHAN_GRACE = 10
BURST = 10


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    config = "c.Spawner.poll_interval = %d\nc.DockerSpawner.orphan_grace_period = %d\n" % (
        POLL_INTERVAL,
        ORPHAN_GRACE,
    )
    with Hub(tmp_path_factory.mktemp("faults-hub"), image=singleuser_image(), extra_config=config) as hub:
        yield hub


def container_of(hub, user):
    (container,) = hub.containers(**{"hubfleet.user": user})
    return container


def seconds_until_stopped(hub, user, timeout=POLL_INTERVAL + 30):
    """Seconds until the hub's REST API no longer lists the user's server."""
    started = time.monotonic()
    hub.wait_stopped(user, timeout=timeout)
    return time.monotonic() - started


def spawn_ready(hub, user, **overrides):
    if overrides:
        hub.set_overrides(user, **overrides)
    r = hub.spawn(user)
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(user)
    return container_of(hub, user)


def test_a_killed_server_is_noticed_at_once_and_the_user_is_told_why(hub):
    user = "drill-killed"
    session = login(hub, user)
    container = spawn_ready(hub, user)
    assert visit(session, hub, user)[1].status_code == 200

    container.kill()
    noticed = seconds_until_stopped(hub, user)
    print("killed server: hub reported it stopped after %.1f s (poll interval %d s)" % (noticed, POLL_INTERVAL))
    assert noticed < NOTICE_WITHIN, "the hub learned of the death only by polling"

    took, r = visit(session, hub, user)
    print("the user's next visit answered in %.2f s with %s" % (took, r.status_code))
    assert r.status_code == 424, r.text[:500]
    assert 'id="start"' in r.text  # the launch button
    reason = stopped_reason_on(r.text)
    assert reason and "SIGKILL" in reason and "exit code 137" in reason, reason

    # The user starts again; the reason is gone with the new server.
    container = spawn_ready(hub, user)
    assert visit(session, hub, user)[1].status_code == 200
    hub.stop_server(user)


def test_an_out_of_memory_server_is_reported_as_such_with_its_limit(hub):
    user = "drill-oom"
    session = login(hub, user)
    container = spawn_ready(hub, user, mem_limit="300M")
    # The server process is what runs out of memory: it is made the OOM killer's first
    # choice (raising one's own oom_score_adj needs no privilege), then memory is taken
    # until the container's limit is reached.
    hog = (
        "open('/proc/1/oom_score_adj', 'w').write('1000')\n"
        "blocks = []\n"
        "while True: blocks.append(bytearray(16 << 20))\n"
    )
    container.exec_run(["python3", "-c", hog])
    noticed = seconds_until_stopped(hub, user)
    print("OOM-killed server: hub reported it stopped after %.1f s" % noticed)
    assert noticed < NOTICE_WITHIN

    took, r = visit(session, hub, user)
    assert r.status_code == 424
    reason = stopped_reason_on(r.text)
    assert reason and "ran out of memory" in reason and "300M" in reason, reason


def test_a_server_stopped_by_the_hub_is_not_reported_as_a_death(hub):
    user = "drill-stopped"
    session = login(hub, user)
    spawn_ready(hub, user)
    hub.stop_server(user)
    took, r = visit(session, hub, user)
    assert r.status_code == 424
    assert stopped_reason_on(r.text) is None


def running_user_containers(hub, user):
    return [c for c in hub.containers(**{"hubfleet.user": user}) if c.status == "running"]


def test_a_hub_killed_during_a_burst_of_spawns_leaves_nothing_stuck_or_orphaned(hub):
    users = ["drill-burst-%d" % i for i in range(BURST)]
    for user in users:
        hub.create_user(user)
    pool = ThreadPoolExecutor(BURST)
    requests_sent = [pool.submit(hub.api, "POST", hub.server_path(user)) for user in users]

    # Kill the hub once some containers exist and some spawns are still on their way.
    deadline = time.monotonic() + 120
    while len(hub.containers()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    hub.kill_hub()
    killed_at = time.monotonic()
    for sent in requests_sent:
        try:
            sent.result()
        except requests.RequestException:
            pass  # the hub died under this request
    pool.shutdown()
    left = {user: len(hub.containers(**{"hubfleet.user": user})) for user in users}
    print("hub killed with containers for %d of %d users" % (sum(1 for n in left.values() if n), BURST))

    hub.start()
    print("hub answering again %.1f s after the kill" % (time.monotonic() - killed_at))
    for user in users:
        model = hub.server_model(user)
        assert model is None or (model["ready"] and not model["pending"]), (user, model)
    adopted = {user for user in users if hub.server_model(user)}

    # Before anyone comes back: once the grace period is over, the only running user
    # containers are those of servers the hub adopted (the rest were stopped).
    def orphans():
        return [user for user in users if user not in adopted and running_user_containers(hub, user)]

    deadline = time.monotonic() + ORPHAN_GRACE + 60
    while orphans() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert orphans() == [], "containers nobody owns kept running"
    print("no orphan running %.1f s after the kill (%d adopted)" % (time.monotonic() - killed_at, len(adopted)))

    # Every user starts again; each ends with exactly one running server.
    for user in users:
        if user not in adopted:
            r = hub.spawn(user)
            assert r.status_code in (201, 202), (user, r.text)
    for user in users:
        hub.wait_ready(user)
        assert len(running_user_containers(hub, user)) == 1, user
    print("all %d users ready %.1f s after the kill" % (BURST, time.monotonic() - killed_at))
    for user in users:
        hub.stop_server(user)
