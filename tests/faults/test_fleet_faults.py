"""Fault drills of the fleet: the registry down or dropping packets, the manager restarted, a worker lost.

Real components on the test bed's swarm (testbed/swarm.py): three Docker-in-Docker hosts, a
manager labelled hubfleet.role=hub and two workers labelled hubfleet.role=user. The hub runs
with its Docker API filter as containers of the hub image on the manager (restart policy
``unless-stopped``, its database in a volume there; site.yml runs it as a swarm service
instead); user servers are the SwarmSpawner's one-replica services on the workers, each with
a node-local named volume as the jupyterhub role configures it. As site.yml configures it,
the user image is named by its reference in the fleet's registry on the manager
(``<manager address>:5000/...``) and is already on the workers; nothing listens there: the
registry is down for every drill. The hub never looks at the image itself (``pull_policy =
"skip"``, as the role sets it for the fleet), so the manager does not hold it. The hub polls
its spawners at JupyterHub's default, 30 s. One directory of this machine is mounted into
every node at the same path, as an NFS mount would be: shared storage for drill 9's user
whose volume is the local driver's bind of their directory there.
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import docker
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from testbed.drills import hub_answers, login, seconds_until, stopped_reason_on, visit  # noqa: E402
from testbed.host import run_playbook  # noqa: E402
from testbed.images import hub_image, node_image, singleuser_image  # noqa: E402
from testbed.swarm import Swarm, SwarmHub, _parallel  # noqa: E402

POLL_INTERVAL = 30
REGISTRY_PORT = 5000
NOTEBOOK_DIR = "/home/jovyan/work"
# Issue 12, drill 9: the hub reports a lost node's servers stopped within this.
LOST_NODE_REPORTED_WITHIN = 60
# A registry that drops packets: a node's pull waits for the engine's connect timeout (30 s),
# then the task fails; well within the spawner's start_timeout (120 s in the test bed).
REGISTRY_DROPPED_FAILS_WITHIN = 60
# Shared storage, as an NFS export mounted on every node: one directory of this machine
# bind-mounted into every node at the same path; a user's volume is the local driver's bind
# of their directory there.
SHARED_ON_NODES = "/srv/hubfleet-shared"
SHARED_USER = "lostshared"  # escaped as it is: {username} names its directory

PULL_PLAYBOOK = """\
- name: A node pulls the user images from the fleet's registry (site.yml's pull play)
  hosts: all
  gather_facts: false
  tasks:
    - name: Trust the registry and pull
      ansible.builtin.include_role:
        name: registry
        tasks_from: pull
"""


@pytest.fixture(scope="module")
def shared_storage():
    """This machine's directory that every node has at SHARED_ON_NODES."""
    path = tempfile.mkdtemp(prefix="hubfleet-test-shared-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def swarm(shared_storage):
    with Swarm(image=node_image(), binds={shared_storage: SHARED_ON_NODES}) as swarm:
        swarm.start(workers=2)
        yield swarm


@pytest.fixture(scope="module")
def registry_image(swarm):
    """The singleuser image on the workers, also under its name in the (absent) registry."""
    local = singleuser_image()
    # The hub's image onto the manager meanwhile (SwarmHub.start finds it there).
    _parallel(lambda load: swarm.load_image(*load), [(local, swarm.workers), (hub_image(), [swarm.manager])])
    ref = "%s:%d/%s" % (swarm.node_ip(swarm.manager), REGISTRY_PORT, local)
    _parallel(lambda node: swarm.exec(node, "docker", "tag", local, ref), swarm.workers)
    return ref


@pytest.fixture(scope="module")
def hub(swarm, registry_image):
    config = "c.Spawner.poll_interval = %d\nc.DockerSpawner.volumes = {'{prefix}-user-{username}': %r}\n" % (
        POLL_INTERVAL, NOTEBOOK_DIR)
    # As the jupyterhub role configures a fleet's hub: the registry's reference; each node
    # pulls for itself (the test bed's hub config says "never", which looks on the manager).
    config += "c.DockerSpawner.image = %r\nc.SwarmSpawner.pull_policy = 'skip'\n" % registry_image
    # A start answers at once (202), so its progress events, the spawn page's messages, are read whole.
    config += "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}\n"
    # The Docker API filter lets volumes bind only below configured directories (the role's
    # jupyterhub_docker_filter_bind_dirs): the shared storage's.
    hub = SwarmHub(swarm, singleuser_image(), spawner_class="hubfleet-swarm", extra_config=config,
                   singleuser_nodes=swarm.workers, filter_policy={"bind_dirs": [SHARED_ON_NODES]})
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


def service_of(hub, user):
    (service,) = hub.docker.services.list(filters={"label": [
        "hubfleet.hub=%s" % hub.hub_label, "hubfleet.user=%s" % user]})
    return service


def task_of(hub, user):
    """The user's service's only task (the swarm never makes a second one)."""
    tasks = service_of(hub, user).tasks()
    assert len(tasks) == 1, [(t["NodeID"], t["Status"]) for t in tasks]
    return tasks[0]


def hostname(hub, task):
    return hub.docker.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"]


def spawn_ready(hub, user):
    r = hub.spawn(user)
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(user)
    return task_of(hub, user)


def put_file(hub, user, name, text):
    r = hub.user_server("PUT", user, "api/contents/work/%s" % name,
                        json={"type": "file", "format": "text", "content": text})
    assert r.status_code in (200, 201), r.text[:300]


def manager_view(swarm, node):
    """The node's state as the manager sees it, or the manager's error while it has none."""
    try:
        return swarm.node_state(node)
    except docker.errors.APIError as error:
        return "manager: %s" % (error.explanation or error)


# --- drill 11: the registry is down ------------------------------------------------------


def test_with_the_registry_down_servers_of_images_on_the_nodes_start_and_others_fail_naming_the_image(
        swarm, hub, registry_image):
    with pytest.raises(requests.ConnectionError):
        requests.get("https://%s:%d/v2/" % (swarm.node_ip(swarm.manager), REGISTRY_PORT), timeout=5, verify=False)

    began = time.monotonic()
    task = spawn_ready(hub, "reg-down")
    print("registry down: a server of an image on the nodes ready in %.1f s" % (time.monotonic() - began))
    assert task["Spec"]["ContainerSpec"]["Image"] == registry_image
    worker = hostname(hub, task)
    # The node did ask the registry: it runs the image it has after the pull failed.
    log = swarm.host.containers.get(worker).logs(tail=400).decode(errors="replace")
    assert "pulling image failed" in log and "%s:%d" % (swarm.node_ip(swarm.manager), REGISTRY_PORT) in log, log[-2000:]
    assert hub.user_server_get("reg-down", "api/status").status_code == 200
    hub.stop_server("reg-down")

    missing = registry_image.rsplit(":", 1)[0] + ":not-on-any-node"
    hub.set_overrides("reg-missing", image=missing)
    began = time.monotonic()
    r = hub.spawn("reg-missing")
    assert r.status_code in (201, 202), r.text[:500]
    events = hub.progress("reg-missing")
    print("registry down: a server of an image on no node failed after %.1f s: %s"
          % (time.monotonic() - began, events[-1]["message"]))
    assert events[-1].get("failed"), events
    assert "No such image" in events[-1]["message"] and missing in events[-1]["message"], events[-1]
    assert hub.server_model("reg-missing") is None


def test_with_the_registry_down_a_new_nodes_join_fails_naming_node_images_registry_and_what_to_do(
        swarm, hub, registry_image):
    began = time.monotonic()
    new = swarm.add_worker()
    joined = time.monotonic() - began
    address = "%s:%d" % (swarm.node_ip(swarm.manager), REGISTRY_PORT)
    result = run_playbook(PULL_PLAYBOOK, {new: {
        "registry_pull": {"singleuser": registry_image}, "registry_address": address, "registry_ca_certificate": ""}})
    print("new node joined in %.1f s; its pull play failed after %.1f s more" % (joined, time.monotonic() - began - joined))
    assert result.returncode != 0, result.stdout[-3000:]
    message = " ".join(result.stdout.split())
    assert "%s could not pull %s from the registry at %s" % (new, registry_image, address) in message, message[-3000:]
    assert "connection refused" in message and "drain it" in message, message[-3000:]

    # As the message says: drained, the node gets no servers; the nodes with the image serve on.
    swarm.set_availability(new, "drain")
    task = spawn_ready(hub, "reg-join")
    assert hostname(hub, task) != new
    hub.stop_server("reg-join")
    swarm.stop_node(new)


def test_with_the_registry_dropping_packets_a_missing_image_fails_in_bounded_time_naming_image_and_registry(
        swarm, hub, registry_image):
    """Not refused but dropped (a registry host gone from the network, a firewall): the nodes'
    pulls wait for the engine's connect timeout instead of failing at once."""
    address = "%s:%d" % (swarm.node_ip(swarm.manager), REGISTRY_PORT)
    drop = ["INPUT", "-p", "tcp", "--dport", str(REGISTRY_PORT), "-j", "DROP"]
    swarm.exec(swarm.manager, "iptables", "-I", *drop)
    try:
        with pytest.raises(requests.Timeout):
            requests.get("https://%s/v2/" % address, timeout=5, verify=False)

        missing = registry_image.rsplit(":", 1)[0] + ":dropped-not-on-any-node"
        hub.set_overrides("reg-drop-missing", image=missing)
        began = time.monotonic()
        r = hub.spawn("reg-drop-missing")
        assert r.status_code in (201, 202), r.text[:500]
        events = hub.progress("reg-drop-missing", timeout=REGISTRY_DROPPED_FAILS_WITHIN + 30)
        failed_after = time.monotonic() - began
        print("registry dropping packets: a server of an image on no node failed after %.1f s: %s"
              % (failed_after, events[-1]["message"]))
        assert events[-1].get("failed"), events
        message = events[-1]["message"]
        assert missing in message and "registry %s" % address in message and "could not pull" in message, message
        assert failed_after < REGISTRY_DROPPED_FAILS_WITHIN
        assert hub.server_model("reg-drop-missing") is None

        began = time.monotonic()
        task = spawn_ready(hub, "reg-drop")
        print("registry dropping packets: a server of an image on the nodes ready in %.1f s"
              % (time.monotonic() - began))
        assert task["Spec"]["ContainerSpec"]["Image"] == registry_image
        assert hub.user_server_get("reg-drop", "api/status").status_code == 200
        hub.stop_server("reg-drop")
    finally:
        swarm.exec(swarm.manager, "iptables", "-D", *drop)


# --- drill 10: the manager restarts ------------------------------------------------------


def test_after_a_manager_restart_the_hub_comes_back_with_its_data_and_adopts_the_servers_on_workers(swarm, hub):
    users = ["mgr-a", "mgr-b"]
    tasks = {user: spawn_ready(hub, user) for user in users}
    for user in users:
        put_file(hub, user, "before.txt", user)

    began = time.monotonic()
    swarm.stop_node(swarm.manager)
    swarm.start_node(swarm.manager)
    engine_back = time.monotonic() - began
    hub.container = hub.docker.containers.get(hub.container_name)
    states = []

    def hub_back():
        # How the manager sees the workers while the hub comes back (they reconnect after it).
        seen = tuple(manager_view(swarm, worker) for worker in swarm.workers[:2])  # not drill 11's stopped one
        if not states or states[-1][1] != seen:
            states.append((round(time.monotonic() - began, 1), seen))
        return hub_answers(hub)

    hub_answered = seconds_until(hub_back, 120, "the hub to answer after the manager restart")
    print("manager restarted: engine answering %.1f s after the stop, hub answering %.1f s later; workers: %s"
          % (engine_back, hub_answered, states))

    def adopted():
        try:  # a short timeout: until the servers are reachable again, requests to them hang
            return all((hub.server_model(user) or {}).get("ready")
                       and hub.user_server("GET", user, "api/status", timeout=3).status_code == 200 for user in users)
        except requests.Timeout:
            return False

    adopted_after = seconds_until(adopted, 60, "the servers to answer through the proxy", interval=0.5)
    print("servers on the workers answering through the proxy %.1f s after the hub answered" % adopted_after)
    for user in users:
        task = task_of(hub, user)
        assert task["ID"] == tasks[user]["ID"] and task["Status"]["State"] == "running", "the server was restarted"
        r = hub.user_server_get(user, "api/contents/work/before.txt")
        assert r.status_code == 200 and r.json()["content"] == user, r.text[:300]
    hub.container.reload()
    assert hub.container.attrs["RestartCount"] == 0, hub.log_tail()
    for user in users:
        hub.stop_server(user)


# --- drill 9: a worker is lost -----------------------------------------------------------


def test_a_lost_workers_servers_are_reported_stopped_and_start_again_elsewhere_told_where_the_files_are(
        swarm, hub, shared_storage):
    users = ["lost-a", "lost-b"]
    tasks = {user: spawn_ready(hub, user) for user in users}
    nodes = {user: hostname(hub, task) for user, task in tasks.items()}
    lost, survivor = nodes["lost-a"], nodes["lost-b"]
    assert lost != survivor, "the swarm should spread two servers over two workers: %s" % nodes
    put_file(hub, "lost-a", "before.txt", "on the lost node")
    session = login(hub, "lost-a")
    # The second branch: a user whose volume is on storage every node shares (the local
    # driver's bind of their directory there, as of an NFS export), on the node to be lost.
    # Their directory exists, as an NFS export's home directories do (the bind needs it).
    os.chown(_mkdir(os.path.join(shared_storage, SHARED_USER)), 1000, 1000)
    shared_volume = {"volume_driver": "local", "volume_driver_options": {
        "type": "none", "o": "bind", "device": SHARED_ON_NODES + "/{username}"}}
    hub.set_overrides(SHARED_USER, placement_constraints=["node.hostname==%s" % lost], **shared_volume)
    assert hub.spawn(SHARED_USER).status_code in (201, 202)
    events = hub.progress(SHARED_USER)
    assert events[-1].get("ready"), events
    tasks[SHARED_USER] = task_of(hub, SHARED_USER)
    assert hostname(hub, tasks[SHARED_USER]) == lost
    put_file(hub, SHARED_USER, "before.txt", "on shared storage")
    users.append(SHARED_USER)

    began = time.monotonic()
    swarm.stop_node(lost)
    stopped = time.monotonic() - began
    states = []

    def reported():
        # Until the hub acts, the swarm keeps the one task on the lost node: no new one elsewhere.
        for user in ("lost-a", SHARED_USER):
            service = hub.docker.services.list(filters={"label": "hubfleet.user=" + user})
            for task in service[0].tasks() if service else []:
                assert task["ID"] == tasks[user]["ID"], "the swarm started the server again by itself: %s" % task
        state = swarm.node_state(lost)
        if not states or states[-1][1] != state:
            states.append((round(time.monotonic() - began, 1), state))
        return hub.server_model("lost-a") is None and hub.server_model(SHARED_USER) is None

    seconds_until(reported, LOST_NODE_REPORTED_WITHIN + 60, "the hub to report the lost servers stopped", interval=0.5)
    noticed = time.monotonic() - began
    print("worker %s stopped in %.1f s; the hub reported its servers stopped %.1f s after the stop (node states: %s)"
          % (lost, stopped, noticed, states))
    assert noticed < LOST_NODE_REPORTED_WITHIN
    assert hub.server_model("lost-b")["ready"] and task_of(hub, "lost-b")["ID"] == tasks["lost-b"]["ID"]
    assert hub.user_server_get("lost-b", "api/status").status_code == 200

    took, page = visit(session, hub, "lost-a")
    print("lost-a's next visit answered in %.2f s with %d" % (took, page.status_code))
    assert page.status_code == 424, page.text[:500]
    reason = stopped_reason_on(page.text)
    assert reason and "(%s) is down" % lost in reason and "Your files are on volumes of node %s" % lost in reason, reason

    began = time.monotonic()
    assert hub.spawn("lost-a").status_code in (201, 202)
    events = hub.progress("lost-a")
    assert events[-1].get("ready"), events
    print("lost-a running again %.1f s after asking" % (time.monotonic() - began))
    messages = [event["message"] for event in events]
    assert any(m.startswith("Your last server was lost with node %s." % lost) and "empty volumes" in m
               for m in messages), messages
    assert hostname(hub, task_of(hub, "lost-a")) == survivor
    # As it was told: the new server's volume is a new, empty one on the other node.
    assert hub.user_server_get("lost-a", "api/contents/work/before.txt").status_code == 404

    # With shared storage: told so, and running elsewhere with the file.
    hub.set_overrides(SHARED_USER, placement_constraints=[], **shared_volume)
    began = time.monotonic()
    assert hub.spawn(SHARED_USER).status_code in (201, 202)
    events = hub.progress(SHARED_USER)
    assert events[-1].get("ready"), events
    print("%s (shared storage) running again %.1f s after asking" % (SHARED_USER, time.monotonic() - began))
    messages = [event["message"] for event in events]
    assert any(m.startswith("Your last server was lost with node %s." % lost) and "on shared storage" in m
               for m in messages), messages
    assert hostname(hub, task_of(hub, SHARED_USER)) == survivor
    r = hub.user_server_get(SHARED_USER, "api/contents/work/before.txt")
    assert r.status_code == 200 and r.json()["content"] == "on shared storage", r.text[:300]
    for user in users:
        hub.stop_server(user)


def _mkdir(path):
    os.mkdir(path)
    return path
