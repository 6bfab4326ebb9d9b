"""The fleet's network isolation on a real three-node swarm: ``hubfleet-firewall watch`` on
both workers, user servers of the session's hub on both, probes between them.

The watcher, its rule builder, its settings and its engine-start hook are installed on the
workers by the role's fleet_firewall.yml (ansible-playbook through docker exec, as
molecule/swarm reaches its hosts), whose run of the hook starts the watcher; a second run
changes nothing. Every probe goes to a user server or the hub of this test's own swarm. The probes first run without the rules: user servers reach each other
across the overlay (between nodes over IPv4, on one node also over IPv6 link-local), so a
"blocked" afterwards can only come from the rules.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.network_probe import LISTENER, PROBE
from testbed.site import ansible_env

pytestmark = pytest.mark.swarm

ROOT = Path(__file__).resolve().parents[3]
HOOK = "/etc/hubfleet/dockerd-started.d/60-hubfleet-firewall-watch"
PIDFILE = "/run/hubfleet-firewall-watch.pid"
OTHER_PORT = 9999  # a second listening port in each server, on IPv4 and IPv6
PLAYBOOK = """
- name: The fleet's network isolation on these nodes, as site.yml's swarm play applies it
  hosts: all
  gather_facts: false
  tasks:
    - name: Isolate the user servers on every node
      ansible.builtin.include_role:
        name: hubfleet.jupyterhub.jupyterhub
        tasks_from: fleet_firewall
"""


def run_fleet_firewall(swarm, nodes, hub, workdir):
    """The role's fleet_firewall.yml on ``nodes`` (through docker exec, as molecule reaches its
    hosts) for the test bed's hub; returns ansible-playbook's output."""
    inventory = {"all": {"hosts": {node: {"ansible_connection": "community.docker.docker"} for node in nodes},
                         "vars": {"jupyterhub_name": hub.hub_label, "jupyterhub_network_name": swarm.overlay,
                                  "jupyterhub_container_name": hub.container_name,
                                  "ansible_python_interpreter": "/usr/bin/python3"}}}
    (workdir / "inventory.json").write_text(json.dumps(inventory))
    (workdir / "playbook.yml").write_text(PLAYBOOK)
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                           str(workdir / "inventory.json"), str(workdir / "playbook.yml")],
                          cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def remove_watcher(swarm, node, network):
    swarm.exec(node, "sh", "-c", 'kill "$(cat %s)"; rm -f %s %s /etc/hubfleet/firewall/swarm-%s.json'
               % (PIDFILE, PIDFILE, HOOK, network), check=False)


def spawn_on(hub, swarm, user, node):
    hostname = swarm.swarm_node(node).attrs["Description"]["Hostname"]
    hub.set_overrides(user, placement_constraints=["node.hostname==%s" % hostname])
    response = hub.spawn(user)
    assert response.status_code in (201, 202), response.text
    hub.wait_ready(user, timeout=120)
    [container] = swarm.docker_client(node).containers.list(
        filters={"label": ["hubfleet.hub=%s" % hub.hub_label, "hubfleet.user=%s" % user]})
    return Server(swarm, node, container)


class Server:
    """A user server's container on its node, reached through that node's docker CLI."""

    def __init__(self, swarm, node, container):
        self.swarm, self.node, self.container = swarm, node, container
        self.address = container.attrs["NetworkSettings"]["Networks"][swarm.overlay]["IPAddress"]
        url = [e for e in container.attrs["Config"]["Env"] if e.startswith("JUPYTERHUB_SERVICE_URL=")][0]
        self.port = int(url.split(":")[-1].split("/")[0])

    def run(self, *command, detach=False):
        return self.swarm.exec(self.node, "docker", "exec", *(["-d"] if detach else []), self.container.id, *command)

    def probe(self, address, port):
        return self.run("python3", "-c", PROBE, address, str(port)).stdout.decode().split(" ")[0].strip()

    def link_local(self):
        """The IPv6 link-local address of the overlay interface (eth0), with its scope."""
        lines = self.run("cat", "/proc/net/if_inet6").stdout.decode().splitlines()
        [hexa] = [w[0] for w in map(str.split, lines) if w[-1] == "eth0" and w[0].startswith("fe80")]
        return ":".join(hexa[i:i + 4] for i in range(0, 32, 4)) + "%eth0"

    def rules(self):
        return self.swarm.exec(self.node, "sh", "-c", 'nsenter -t "$(docker inspect -f {{.State.Pid}} %s)" -n iptables -S'
                               % self.container.id).stdout.decode()


def wait_for_rules(server, timeout=30):
    """How many looks at the namespace it took until the watcher's rules were there."""
    deadline = time.monotonic() + timeout
    looks = 1
    while "-A OUTPUT -j HUBFLEET-OUT" not in server.rules():
        assert time.monotonic() < deadline, "no rules in %s after %ss" % (server.container.name, timeout)
        time.sleep(0.2)
        looks += 1
    return looks


def test_user_servers_on_two_workers_cannot_reach_each_other_but_reach_the_hub(swarm_hub, swarm, tmp_path):
    hub = swarm_hub
    first, second = swarm.workers[0], swarm.workers[1]
    users = ["iso-a", "iso-b", "iso-c", "iso-d"]
    try:
        a = spawn_on(hub, swarm, "iso-a", first)
        b = spawn_on(hub, swarm, "iso-b", second)
        c = spawn_on(hub, swarm, "iso-c", second)  # b's neighbour on the same node
        b.run("python3", "-c", LISTENER, str(OTHER_PORT), detach=True)
        time.sleep(1)

        def probes():
            return {
                "a -> b's server (other node)": a.probe(b.address, b.port),
                "a -> b's other port (other node)": a.probe(b.address, OTHER_PORT),
                "c -> b's server (same node)": c.probe(b.address, b.port),
                "c -> b's other port over IPv6 link-local (same node)": c.probe(b.link_local(), OTHER_PORT),
                "a -> the hub's API": a.probe(hub.overlay_ip, 8081),
                "b -> the hub's API": b.probe(hub.overlay_ip, 8081),
            }

        assert set(probes().values()) == {"open"}, "without rules every probe must connect: %s" % probes()

        output = run_fleet_firewall(swarm, [first, second], hub, tmp_path)
        assert len(re.findall(r"changed=[1-9]", output)) == 2, output
        again = run_fleet_firewall(swarm, [first, second], hub, tmp_path)
        assert len(re.findall(r"changed=0 ", again)) == 2, "a second run must change nothing:\n" + again
        for server in (a, b, c):
            wait_for_rules(server)
        assert probes() == {
            "a -> b's server (other node)": "blocked",
            "a -> b's other port (other node)": "blocked",
            "c -> b's server (same node)": "blocked",
            "c -> b's other port over IPv6 link-local (same node)": "blocked",
            "a -> the hub's API": "open",
            "b -> the hub's API": "open",
        }
        for user in ("iso-a", "iso-b", "iso-c"):
            assert hub.user_server_get(user, "api/status").status_code == 200, user

        # A server started while the watcher runs gets the rules from the start event.
        d = spawn_on(hub, swarm, "iso-d", first)
        answered = time.monotonic()
        looks = wait_for_rules(d)
        print("rules in iso-d's namespace %.1fs after its server answered, at look %d" % (time.monotonic() - answered, looks))
        assert d.probe(a.address, a.port) == "blocked"
        assert a.probe(d.address, d.port) == "blocked"
        assert d.probe(hub.overlay_ip, 8081) == "open"
        assert hub.user_server_get("iso-d", "api/status").status_code == 200
    finally:
        for node in (first, second):
            remove_watcher(swarm, node, swarm.overlay)
        for user in users:
            if hub.server_model(user) is not None:
                hub.stop_server(user)
