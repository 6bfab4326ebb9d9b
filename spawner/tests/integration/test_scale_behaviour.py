"""Behaviour that makes the spawner scale (no timing assertions: see spawner/benchmarks)."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from testbed.docker_proxy import CountingDockerProxy
from testbed.hub import Hub

pytestmark = pytest.mark.integration

POLL_INTERVAL = 3


@pytest.fixture(scope="module")
def counted_hub(image, tmp_path_factory):
    """A hub whose Docker API traffic goes through a counting proxy (then the filter)."""
    workdir = tmp_path_factory.mktemp("counted-hub")
    socket_path = str(workdir / "docker.sock")
    hub = Hub(
        workdir,
        image=image,
        extra_config="c.DockerSpawner.client_kwargs = {'base_url': 'unix://%s'}\n"
        "c.Spawner.poll_interval = %d\n" % (socket_path, POLL_INTERVAL),
    )
    proxy = CountingDockerProxy(socket_path, upstream=str(hub.filter_socket)).start()
    hub.proxy = proxy
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        hub.cleanup()


def test_polling_many_servers_reads_the_shared_view(counted_hub):
    users = ["view%d" % i for i in range(4)]
    for user in users:
        assert counted_hub.spawn(user).status_code in (201, 202)
    for user in users:
        counted_hub.wait_ready(user)
    counted_hub.proxy.count = 0
    cycles = 4
    time.sleep(POLL_INTERVAL * cycles)
    # Four servers polled four times each: one inspect per poll would be 16 requests.
    assert counted_hub.proxy.count <= 2 * cycles, counted_hub.proxy.count
    for user in users:
        counted_hub.stop_server(user)


CREATE = rb"POST /\S*containers/create"
START = rb"POST /\S*containers/\S+/start"


def spawn_together_through_a_gate(hub, users, request, parties, timeout=30):
    """Spawn ``users`` at once while the Docker requests matching ``request`` are held
    until ``parties`` of them wait together (or ``timeout``); every server must become
    ready, then stops. Returns the gate."""
    gate = hub.proxy.hold(request, parties=parties, timeout=timeout)
    try:
        with ThreadPoolExecutor(len(users)) as pool:
            codes = [response.status_code for response in pool.map(hub.spawn, users)]
        assert all(code in (201, 202) for code in codes), codes
        for user in users:
            hub.wait_ready(user)
    finally:
        hub.proxy.hold(None, 0)
    for user in users:
        hub.stop_server(user)
    return gate


def test_concurrent_spawns_of_distinct_users_are_in_flight_together(counted_hub):
    users = ["together%d" % i for i in range(3)]
    # Each container creation is held until all three are waiting at once: spawns that
    # took turns (one lock around start) would leave the first alone until the gate gives up.
    gate = spawn_together_through_a_gate(counted_hub, users, CREATE, parties=len(users))
    assert gate.met, "at most %d of %d container creations were in flight at once" % (gate.most_waiting, len(users))


def test_servers_beyond_the_boot_slots_wait_their_turn(counted_hub):
    # With the default slots (twice the host's CPUs) three servers boot together ...
    free = ["free%d" % i for i in range(3)]
    assert spawn_together_through_a_gate(counted_hub, free, START, parties=3).met
    # ... with one slot they take turns: never two container starts in flight at once.
    one_slot = ["turn%d" % i for i in range(3)]
    for user in one_slot:
        counted_hub.set_overrides(user, boot_concurrency=1)
    gate = spawn_together_through_a_gate(counted_hub, one_slot, START, parties=2, timeout=3)
    assert gate.most_waiting == 1 and not gate.met


class Blackhole:
    """A TCP port that accepts connections and never answers: a registry that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self):
        for conn in self.connections:
            conn.close()
        self.sock.close()


def test_a_hanging_pull_does_not_delay_other_users(counted_hub):
    registry = Blackhole()
    try:
        counted_hub.set_overrides("slowpull", image="127.0.0.1:%d/hangs:1" % registry.port, pull_policy="always")
        counted_hub.spawn("slowpull")
        deadline = time.monotonic() + 10
        while not registry.connections and time.monotonic() < deadline:
            time.sleep(0.1)
        assert registry.connections, "the pull never reached the hanging registry"
        # While that pull hangs, another user's server starts and is served.
        assert counted_hub.spawn("quick").status_code in (201, 202)
        counted_hub.wait_ready("quick", timeout=60)
        model = counted_hub.server_model("slowpull")
        assert model is not None and model["pending"] == "spawn", model
        assert counted_hub.user_server_get("quick", "api/status").status_code == 200
        counted_hub.stop_server("quick")
    finally:
        registry.close()
    # With the registry gone the pull fails and the slow spawn ends with a clear error.
    events = counted_hub.progress("slowpull", timeout=120)
    assert events[-1].get("failed") and "Pulling image" in events[-1]["message"], events[-1]
