"""The swarm test bed itself: real nodes, real swarm, real overlay, a real hub inside it."""

import os
import subprocess
import sys
import time

import docker
import pytest

from testbed.images import TEST_LABEL
from testbed.swarm import HOST_API_TIMEOUT, OWNER_LABEL, ROLE_LABEL, cleanup_by_label

pytestmark = pytest.mark.swarm

PROBE = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)"


def wait_for(condition, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError("%s: not true after %ss" % (what, timeout))


def running_tasks(service):
    return [t for t in service.tasks() if t["Status"]["State"] == "running"]


def node_hostnames(manager_client, tasks):
    hostnames = {n.id: n.attrs["Description"]["Hostname"] for n in manager_client.nodes.list()}
    return sorted(hostnames[t["NodeID"]] for t in tasks)


@pytest.fixture
def services(swarm):
    """Services a test creates on the swarm; removed afterwards."""
    created = []
    yield created
    for service in created:
        service.remove()


def http_service(swarm, singleuser, name, replicas=1):
    """A dnsrr service of the singleuser image answering HTTP on port 8888, on the workers."""
    return swarm.docker_client(swarm.manager).services.create(
        singleuser,
        command=["python3", "-m", "http.server", "8888"],
        name=name,
        networks=[swarm.overlay],
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
        constraints=["node.labels.%s==user" % ROLE_LABEL],
        mode=docker.types.ServiceMode("replicated", replicas=replicas),
        labels=swarm.labels,
        container_labels=swarm.labels,
    )


def test_swarm_has_a_labelled_manager_and_two_labelled_workers(swarm):
    nodes = swarm.docker_client(swarm.manager).nodes.list()
    seen = {
        n.attrs["Description"]["Hostname"]: (
            n.attrs["Spec"]["Role"],
            n.attrs["Spec"].get("Labels", {}).get(ROLE_LABEL),
            n.attrs["Status"]["State"],
            n.attrs["Spec"]["Availability"],
        )
        for n in nodes
    }
    assert seen == {
        swarm.manager: ("manager", "hub", "ready", "active"),
        swarm.workers[0]: ("worker", "user", "ready", "active"),
        swarm.workers[1]: ("worker", "user", "ready", "active"),
    }
    overlay = swarm.docker_client(swarm.manager).networks.get(swarm.overlay)
    assert overlay.attrs["Driver"] == "overlay" and overlay.attrs["Attachable"] is True


def test_every_node_object_carries_the_test_label(swarm):
    host = docker.from_env()
    selector = {"label": "%s=%s" % (TEST_LABEL, swarm.label_value)}
    assert sorted(c.name for c in host.containers.list(filters=selector)) == sorted(swarm.nodes)
    assert len(host.volumes.list(filters=selector)) == len(swarm.nodes)
    assert [n.name for n in host.networks.list(filters=selector)] == [swarm.network_name]


def test_nodes_have_the_singleuser_image(swarm, singleuser):
    for node in swarm.nodes:
        assert swarm.docker_client(node).images.get(singleuser).id == docker.from_env().images.get(singleuser).id
    assert swarm.load_image(singleuser) == []  # already there: nothing copied again


def test_node_engine_api_is_unreachable_from_containers_inside_a_node(swarm, singleuser):
    manager_ip = swarm.node_ip(swarm.manager)
    # This machine reaches it (the docker_client calls above prove the same)...
    subprocess.run([sys.executable, "-c", PROBE, manager_ip, "2375"], check=True)
    # ...but a user container on the manager, on the overlay, must not.
    client = swarm.docker_client(swarm.manager)
    container = client.containers.run(
        singleuser, ["python3", "-c", PROBE, manager_ip, "2375"], network=swarm.overlay,
        labels=swarm.labels, detach=True,
    )
    try:
        result = container.wait(timeout=30)
        assert result["StatusCode"] != 0, container.logs().decode()
        assert b"timed out" in container.logs() or b"refused" in container.logs()
    finally:
        container.remove(force=True)


def test_dnsrr_service_on_workers_answers_a_container_on_the_manager(swarm, singleuser, services):
    client = swarm.docker_client(swarm.manager)
    service = http_service(swarm, singleuser, "hft-probe-web")
    services.append(service)
    tasks = wait_for(lambda: running_tasks(service), 90, "a running task of the probe service")
    assert set(node_hostnames(client, tasks)) <= set(swarm.workers)
    fetch = "import urllib.request; print(urllib.request.urlopen('http://hft-probe-web:8888/', timeout=5).status)"

    def answered():
        container = client.containers.run(
            singleuser, ["python3", "-c", fetch], network=swarm.overlay, labels=swarm.labels, detach=True
        )
        try:
            return container.wait(timeout=30)["StatusCode"] == 0 and container.logs().strip() == b"200"
        finally:
            container.remove(force=True)

    # DNS for a new service takes a moment to reach the manager's resolver.
    wait_for(answered, 60, "the service answering over the overlay from the manager")


def test_draining_a_worker_moves_its_tasks_to_the_other(swarm, singleuser, services):
    client = swarm.docker_client(swarm.manager)
    service = http_service(swarm, singleuser, "hft-probe-drain", replicas=2)
    services.append(service)
    wait_for(lambda: len(running_tasks(service)) == 2, 90, "two running tasks")
    drained, other = swarm.workers
    swarm.set_availability(drained, "drain")
    try:
        wait_for(
            lambda: node_hostnames(client, running_tasks(service)) == [other, other],
            90,
            "both tasks running on %s after draining %s" % (other, drained),
        )
        swarm_node = swarm.swarm_node(drained)
        assert swarm_node.attrs["Spec"]["Availability"] == "drain"
    finally:
        swarm.set_availability(drained, "active")
    assert swarm.swarm_node(drained).attrs["Spec"]["Availability"] == "active"


def test_set_availability_refuses_an_unknown_value(swarm):
    with pytest.raises(ValueError, match="availability"):
        swarm.set_availability(swarm.workers[0], "off")
    assert swarm.swarm_node(swarm.workers[0]).attrs["Spec"]["Availability"] == "active"


def test_swarm_hub_spawns_a_server_reached_through_the_proxy(swarm_hub):
    response = swarm_hub.spawn("alice")
    assert response.status_code in (201, 202), response.text
    model = swarm_hub.wait_ready("alice", timeout=180)
    assert model["ready"] is True
    status = swarm_hub.user_server_get("alice", "api/status")
    assert status.status_code == 200 and "last_activity" in status.json()
    selector = {"label": ["hubfleet.hub=%s" % swarm_hub.hub_label, "hubfleet.user=alice"]}
    client = swarm_hub.docker
    containers = client.containers.list(filters=selector)
    if swarm_hub.spawner_class == "hubfleet-docker":
        assert len(containers) == 1
        assert swarm_hub.swarm.overlay in containers[0].attrs["NetworkSettings"]["Networks"]
    else:
        assert len(client.services.list(filters=selector)) == 1


def test_swarm_hub_restart_keeps_users_and_their_server(swarm_hub):
    swarm_hub.spawn("bob")
    swarm_hub.wait_ready("bob", timeout=180)
    swarm_hub.restart()
    # Same overlay address as before: servers on other nodes still reach the hub's API.
    hub_container = swarm_hub.docker.containers.get(swarm_hub.container_name)
    assert hub_container.attrs["NetworkSettings"]["Networks"][swarm_hub.swarm.overlay]["IPAddress"] == swarm_hub.overlay_ip
    assert swarm_hub.server_model("bob")["ready"] is True
    assert swarm_hub.user_server_get("bob", "api/status").status_code == 200
    swarm_hub.stop_server("bob")
    assert swarm_hub.server_model("bob") is None


def test_cleanup_by_label_removes_only_runs_whose_owner_is_gone():
    host = docker.from_env(timeout=HOST_API_TIMEOUT)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # a process id that no longer runs: a crashed test run
    dead = {TEST_LABEL: "swarm-cleanupdead%d" % os.getpid(), OWNER_LABEL: str(finished.pid)}
    alive = {TEST_LABEL: "swarm-cleanupalive%d" % os.getpid(), OWNER_LABEL: str(os.getpid())}
    host.volumes.create("hft-%s" % dead[TEST_LABEL], labels=dead)
    host.networks.create("hft-%s" % dead[TEST_LABEL], labels=dead)
    host.volumes.create("hft-%s" % alive[TEST_LABEL], labels=alive)
    try:
        removed = cleanup_by_label()
        assert dead[TEST_LABEL] in removed and alive[TEST_LABEL] not in removed
        assert host.volumes.list(filters={"label": "%s=%s" % (TEST_LABEL, dead[TEST_LABEL])}) == []
        assert host.networks.list(filters={"label": "%s=%s" % (TEST_LABEL, dead[TEST_LABEL])}) == []
        assert len(host.volumes.list(filters={"label": "%s=%s" % (TEST_LABEL, alive[TEST_LABEL])})) == 1
    finally:
        cleanup_by_label(alive[TEST_LABEL][len("swarm-"):], host)
        cleanup_by_label(dead[TEST_LABEL][len("swarm-"):], host)
    assert all(not host.volumes.list(filters={"label": "%s=%s" % (TEST_LABEL, v[TEST_LABEL])}) for v in (dead, alive))
