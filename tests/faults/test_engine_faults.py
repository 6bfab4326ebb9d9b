"""Fault drills of the Docker engine on one host: dockerd restarts, the host reboots.

Real components, inside one Docker-in-Docker host of this machine (testbed/host.py) whose
engine the docker_engine role set up (daemon.json with live-restore, the role's supervisor
instead of systemd): the hub as a container of the hub image with the role's restart policy
and its Docker API filter (testbed.swarm.SwarmHub, on a bridge network of that host), user
servers as containers of the singleuser image. The engine of this machine is never
restarted. The hub polls its spawners only every 60 s, so a death noticed within seconds was
learned from the spawner's Docker events.
"""

import ipaddress
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from testbed.drills import hub_answers, seconds_until  # noqa: E402
from testbed.host import EngineHost  # noqa: E402
from testbed.hub import bridge_gateway  # noqa: E402
from testbed.images import singleuser_image  # noqa: E402
from testbed.network_probe import LAN_SERVER, PROBE  # noqa: E402
from testbed.swarm import SwarmHub  # noqa: E402

POLL_INTERVAL = 60
NOTICE_WITHIN = 15
NOTEBOOK_DIR = "/home/jovyan/work"
# After a reboot the hub must report every server stopped this soon after it answers.
STOPPED_AFTER_BOOT_WITHIN = 10


@pytest.fixture(scope="module")
def host():
    # Off at first: the first drill turns it on with the role, on a running engine.
    with EngineHost(role_vars={"docker_engine_live_restore": False}) as host:
        host.start()
        print("engine host up in %.1f s (docker_engine role %.1f s)" % (host.timings["start"], host.timings["role"]))
        yield host


@pytest.fixture(scope="module")
def hub(host):
    # User files on a named volume per user, as the jupyterhub role configures it.
    config = "c.Spawner.poll_interval = %d\nc.DockerSpawner.volumes = {'{prefix}-user-{username}': %r}\n" % (
        POLL_INTERVAL,
        NOTEBOOK_DIR,
    )
    hub = SwarmHub(host, singleuser=singleuser_image(), spawner_class="hubfleet-docker", extra_config=config)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


def container_of(hub, user):
    (container,) = hub.docker.containers.list(all=True, filters={"label": [
        "hubfleet.hub=%s" % hub.hub_label, "hubfleet.user=%s" % user]})
    return container


def spawn_ready(hub, user):
    r = hub.spawn(user)
    assert r.status_code in (201, 202), r.text
    hub.wait_ready(user)
    return container_of(hub, user)


def in_server(host, container, *command):
    """Run ``command`` in a user's server through the host's own docker CLI: the SDK's exec
    over the host's TCP API came back with an empty output now and then (exit code 0)."""
    return host.exec(host.node, "docker", "exec", container.id, *command, check=False)


def write_file(host, container, name, text):
    result = in_server(host, container, "sh", "-c", "printf %%s '%s' > %s/%s" % (text, NOTEBOOK_DIR, name))
    assert result.returncode == 0, result.stderr


def read_file(host, container, name):
    result = in_server(host, container, "cat", "%s/%s" % (NOTEBOOK_DIR, name))
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def kernel_ids(hub, user):
    r = hub.user_server_get(user, "api/kernels")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return {kernel["id"] for kernel in r.json()}


def started_at(container):
    """When the container's process started, in seconds since the epoch."""
    container.reload()
    stamp = container.attrs["State"]["StartedAt"]  # e.g. 2026-12-02T19:01:02.123456789Z
    return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()


def test_the_role_turns_live_restore_on_with_a_reload_that_restarts_no_container(host, hub):
    engine = host.docker_client(host.node)
    assert engine.info()["LiveRestoreEnabled"] is False
    hub_started = started_at(hub.container)
    dockerd = host.dockerd_pid()

    took = host.apply_role(docker_engine_live_restore=True)
    print("docker_engine role re-run turning live-restore on: %.1f s" % took)
    assert host.daemon_config()["live-restore"] is True
    assert engine.info()["LiveRestoreEnabled"] is True
    assert host.dockerd_pid() == dockerd, "the daemon was restarted, not reloaded"
    assert started_at(hub.container) == hub_started and hub.container.status == "running"


def test_servers_and_kernels_survive_a_dockerd_restart_and_a_later_death_is_noticed_at_once(host, hub):
    assert host.daemon_config()["live-restore"] is True
    engine = host.docker_client(host.node)
    assert engine.info()["LiveRestoreEnabled"] is True
    user = "drill-dockerd"
    container = spawn_ready(hub, user)
    write_file(host, container, "before-restart.txt", "kept")
    r = hub.user_server("POST", user, "api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text[:300]
    kernel = r.json()["id"]
    pid = container.attrs["State"]["Pid"]

    exited, answering = host.restart_dockerd()
    print("dockerd restart: old daemon gone after %.1f s, new one answering %.1f s after the SIGTERM" % (exited, answering))

    container.reload()
    assert container.status == "running" and container.attrs["State"]["Pid"] == pid, "the server was restarted"
    assert hub.server_model(user)["ready"]
    reachable = seconds_until(lambda: kernel in kernel_ids(hub, user), 30, "the kernel through the proxy")
    print("server and kernel reachable through the proxy %.1f s after the new daemon answered" % reachable)
    assert read_file(host, container, "before-restart.txt") == "kept"

    # The spawner's view follows the new daemon's events: a death is still noticed at once.
    container.kill()
    noticed = seconds_until(lambda: hub.server_model(user) is None, POLL_INTERVAL + 30, "the hub to report the kill")
    print("server killed after the restart: hub reported it stopped after %.1f s (poll interval %d s)"
          % (noticed, POLL_INTERVAL))
    assert noticed < NOTICE_WITHIN, "the hub learned of the death only by polling: the view lost the event stream"

    container = spawn_ready(hub, user)
    assert read_file(host, container, "before-restart.txt") == "kept"
    hub.stop_server(user)


def test_after_a_host_reboot_the_hub_starts_by_itself_and_reports_every_server_stopped(host, hub):
    users = ["drill-reboot-a", "drill-reboot-b"]
    for user in users:
        write_file(host, spawn_ready(hub, user), "before-reboot.txt", user)

    down, engine_back = host.reboot()
    print("host rebooted: stopped in %.1f s, engine answering %.1f s after the start" % (down, engine_back))
    hub.container = hub.docker.containers.get(hub.container_name)
    began = time.time()
    # The restart policy brings the hub back.
    seconds_until(lambda: hub_answers(hub), 120, "the hub to answer after the reboot")
    hub.container.reload()
    hub_started = started_at(hub.container)
    restarts = hub.container.attrs["RestartCount"]
    print("hub answering %.1f s after the engine, %.1f s after its container last started, restarts: %d"
          % (time.time() - began, time.time() - hub_started, restarts))
    # Its first start after the boot succeeds: nothing left from before the reboot (the
    # proxy's pid file) trips it.
    assert restarts == 0, hub.container.logs(tail=20).decode(errors="replace")
    stopped_after = seconds_until(lambda: all(hub.server_model(user) is None for user in users), 60,
                                  "the hub to report every server stopped")
    print("hub reported every server stopped %.1f s after it answered (%.1f s after its container started)"
          % (stopped_after, time.time() - hub_started))
    assert stopped_after < STOPPED_AFTER_BOOT_WITHIN

    for user in users:
        assert read_file(host, spawn_ready(hub, user), "before-reboot.txt") == user
        hub.stop_server(user)
    print("users started again %.1f s after the hub started, files intact" % (time.time() - hub_started))


# --- Network isolation across engine starts (issue 13) -----------------------------------

FIREWALL_PLAYBOOK = """\
- name: What the jupyterhub role installs to re-apply the network isolation at engine starts
  hosts: all
  gather_facts: false
  tasks:
    - name: Install hubfleet-firewall, the supervisor's hook and this hub's settings
      ansible.builtin.include_role:
        name: jupyterhub
        tasks_from: firewall_boot
"""
SERVER_PORT = 8888
LAN_PORT = 8080
ISOLATED = {
    "another user's server": "blocked",
    "hub API": "open",
    "host, hub's public port": "blocked",
    "LAN host": "blocked",
}


@pytest.fixture(scope="module")
def lan(host):
    """A "LAN" host: a container on this machine beside the Docker host, on the test's own
    network (a private range), reached from the user servers through the host's uplink."""
    lan = host.host.containers.run(singleuser_image(), ["python3", "-c", LAN_SERVER, str(LAN_PORT)], detach=True,
                                   network=host.network_name, user="1000", labels=host.labels,
                                   name="hft-%s-lan" % host.label_value)
    try:
        lan.reload()
        yield lan.attrs["NetworkSettings"]["Networks"][host.network_name]["IPAddress"]
    finally:
        lan.remove(force=True)


def probe(host, container, address, port):
    """``open`` or ``blocked``, from inside ``container``."""
    result = in_server(host, container, "python3", "-c", PROBE, address, str(port))
    output = result.stdout.decode()
    if not output:
        return "no answer (exit %d): %s" % (result.returncode, result.stderr.decode(errors="replace").strip())
    return output.split()[0]


def isolation_probes(host, hub, lan, alice, bob):
    """What alice's server reaches: bob's server, the hub's API, the host, the LAN."""
    gateway = bridge_gateway(host.docker_client(host.node), host.overlay)
    bob.reload()
    return {
        "another user's server": probe(host, alice, bob.attrs["NetworkSettings"]["Networks"][host.overlay]["IPAddress"],
                                       SERVER_PORT),
        "hub API": probe(host, alice, hub.overlay_ip, 8081),
        "host, hub's public port": probe(host, alice, gateway, 8000),
        "LAN host": probe(host, alice, lan, LAN_PORT),
    }


def hook_reports(host):
    """hubfleet-firewall's reports on the hub network in the host's engine log, oldest first."""
    log = host.exec(host.node, "cat", "/var/log/dockerd.log").stdout.decode()
    return [line for line in log.splitlines() if "hubfleet-firewall: %s:" % host.overlay in line]


def host_rules(host):
    return host.exec(host.node, "iptables", "-w", "-S").stdout.decode()


def test_network_isolation_is_in_place_again_after_a_dockerd_restart_and_a_reboot(host, hub, lan):
    if not host.docker_client(host.node).info()["LiveRestoreEnabled"]:  # run alone: the first drill did not
        host.apply_role(docker_engine_live_restore=True)
    users = ("drill-fw-alice", "drill-fw-bob")
    alice, bob = (spawn_ready(hub, user) for user in users)
    assert isolation_probes(host, hub, lan, alice, bob) == {name: "open" for name in ISOLATED}, \
        "without rules every probe must connect (else the drill proves nothing)"

    host.run_playbook(FIREWALL_PLAYBOOK, {
        "jupyterhub_network_name": host.overlay,
        "jupyterhub_container_name": hub.container_name,
        "jupyterhub_network_allowlist": [],
        "jupyterhub_network_isolation": True,
    })
    # What the module does on a deployment; the same rule builder, through the installed program.
    print(host.exec(host.node, "hubfleet-firewall", "apply").stdout.decode().strip())
    assert isolation_probes(host, hub, lan, alice, bob) == ISOLATED
    assert "-d 169.254.0.0/16 -j REJECT" in host_rules(host), "the metadata range is not rejected"
    runs = len(hook_reports(host))

    _exited, answering = host.restart_dockerd()
    print("dockerd restart: new daemon answering %.1f s after the SIGTERM" % answering)
    assert isolation_probes(host, hub, lan, alice, bob) == ISOLATED
    took = seconds_until(lambda: len(hook_reports(host)) > runs, 60, "the supervisor's hook after the restart")
    # dockerd 20.10 keeps our chains and jumps across its restart: nothing to change.
    print("hook after the restart, %.1f s after the new daemon answered: %s" % (took, hook_reports(host)[-1]))
    assert hook_reports(host)[-1].endswith("rules in place")
    for user in users:
        assert hub.user_server_get(user, "api/status").status_code == 200, "the proxy must still route to %s" % user

    runs = len(hook_reports(host))
    _down, engine_back = host.reboot()
    print("host rebooted: engine answering %.1f s after the start" % engine_back)
    applied = seconds_until(lambda: len(hook_reports(host)) > runs, 120, "the supervisor's hook after the reboot")
    # The reboot emptied the kernel's tables: the hook made the rules again.
    print("hook after the reboot, %.1f s after the engine answered: %s" % (applied, hook_reports(host)[-1]))
    assert hook_reports(host)[-1].endswith("rule changes applied")
    hub.container = hub.docker.containers.get(hub.container_name)
    seconds_until(lambda: hub_answers(hub), 120, "the hub to answer after the reboot")
    seconds_until(lambda: all(hub.server_model(user) is None for user in users), 60, "the hub to report the servers stopped")
    alice, bob = (spawn_ready(hub, user) for user in users)
    assert isolation_probes(host, hub, lan, alice, bob) == ISOLATED
    for user in users:
        assert hub.user_server_get(user, "api/status").status_code == 200, "the proxy must still route to %s" % user
    check = host.exec(host.node, "hubfleet-firewall", "check", check=False)
    assert check.returncode == 0, check.stdout.decode()
    for user in users:
        hub.stop_server(user)


def test_the_hubs_exemption_follows_its_new_address_and_leaves_the_old_one(host, hub, lan):
    """A hub container that comes back with another address (a restart outside the role):
    the watcher moves its exemption within seconds, and whatever takes the old address
    reaches no user server."""
    users = ("drill-fw-carol", "drill-fw-dave")
    carol, dave = (spawn_ready(hub, user) for user in users)
    host.run_playbook(FIREWALL_PLAYBOOK, {  # installs the program, the hooks and starts the watcher
        "jupyterhub_network_name": host.overlay,
        "jupyterhub_container_name": hub.container_name,
        "jupyterhub_network_allowlist": [],
        "jupyterhub_network_isolation": True,
    })
    assert isolation_probes(host, hub, lan, carol, dave) == ISOLATED
    old = hub.overlay_ip
    new = str(ipaddress.ip_address(old) - 2)
    squatter = SimpleNamespace(id="hft-%s-squatter" % host.label_value)
    node = host.node
    host.exec(node, "docker", "network", "disconnect", host.overlay, hub.container_name)
    host.exec(node, "docker", "network", "connect", "--ip", new, host.overlay, hub.container_name)
    moved = time.monotonic()
    try:
        host.exec(node, "docker", "run", "--detach", "--name", squatter.id, "--network", host.overlay, "--ip", old,
                  "--user", "1000", "--entrypoint", "sleep", hub.singleuser, "600")
        hub.overlay_ip = new
        took = seconds_until(lambda: probe(host, carol, new, 8081) == "open", 30,
                             "the watcher to move the hub's exemption to its new address")
        print("the hub's exemption followed its new address %.1f s after it moved (the watcher looks every 5 s)"
              % (time.monotonic() - moved))
        assert took < 30
        assert isolation_probes(host, hub, lan, carol, dave) == ISOLATED
        carol.reload()
        carol_address = carol.attrs["NetworkSettings"]["Networks"][host.overlay]["IPAddress"]
        assert probe(host, squatter, carol_address, SERVER_PORT) == "blocked", "the hub's old address kept its exemption"
        assert "-s %s/32 -j RETURN" % old not in host_rules(host)
        # The hub (and its proxy) reach the servers from the new address. (Not a request through
        # the proxy: this test bed's servers call the hub's API at its fixed address, the old one.)
        hub_container = SimpleNamespace(id=hub.container_name)
        assert probe(host, hub_container, carol_address, SERVER_PORT) == "open", "the hub cannot reach the servers"
    finally:
        host.exec(node, "docker", "rm", "--force", squatter.id, check=False)
        host.exec(node, "docker", "network", "disconnect", host.overlay, hub.container_name, check=False)
        host.exec(node, "docker", "network", "connect", "--ip", old, host.overlay, hub.container_name, check=False)
        hub.overlay_ip = old
    seconds_until(lambda: probe(host, carol, old, 8081) == "open", 30, "the exemption back at the hub's address")
    for user in users:
        assert hub.user_server_get(user, "api/status").status_code == 200, "the proxy must still route to %s" % user
        hub.stop_server(user)
