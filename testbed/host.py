"""One Docker host inside this machine whose engine the docker_engine role runs, for engine drills.

    host = EngineHost().start()        # a Docker-in-Docker host; the role starts its dockerd
    hub = SwarmHub(host, singleuser=…, spawner_class="hubfleet-docker").start()
    host.restart_dockerd()             # SIGTERM dockerd; the role's supervisor starts it again
    host.reboot()                      # the host container stopped and started: every process gone
    host.stop()

The host is a node of the swarm test bed (testbed/swarm.py, same image, labels, clean-up,
``docker_client()``, ``exec()``, ``load_image()``) that never joins a swarm, so its engine
may use live-restore. Its entrypoint does not start dockerd (``HUBFLEET_NODE_DOCKERD=role``):
``start()`` applies the docker_engine role to it with ansible-playbook through the
``community.docker.docker`` connection, so the engine runs with the role's daemon.json and
under the role's supervisor, which the entrypoint starts again at every boot of the host.
Instead of the swarm's overlay, the hub and the user servers share a bridge network on the
host (``overlay`` names it, with the same fixed subnet), so ``SwarmHub`` runs on it unchanged.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from testbed.hub import bridge_gateway
from testbed.images import node_image
from testbed.swarm import DIND_OPTIONS, Swarm, _log, _wait

ROOT = Path(__file__).resolve().parent.parent
HOST_NETWORK = "hubfleet-net"

PLAYBOOK = """\
- name: The docker_engine role on a test host
  hosts: all
  gather_facts: false
  roles:
    - docker_engine
"""


def run_playbook(playbook, hosts, timeout=180):
    """ansible-playbook of ``playbook`` (YAML text, ``hosts: all``) on test-bed nodes through
    the ``community.docker.docker`` connection, with this checkout's roles and collection;
    ``hosts`` maps node names to their variables. Returns the CompletedProcess (output and
    errors together in ``stdout``), whether the play passed or failed."""
    with tempfile.TemporaryDirectory() as workdir:
        collection = Path(workdir) / "ansible_collections" / "hubfleet" / "jupyterhub"
        collection.parent.mkdir(parents=True)
        collection.symlink_to(ROOT)
        connection = {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}
        inventory = Path(workdir) / "hosts.yml"
        inventory.write_text(json.dumps({"all": {"hosts": {
            node: dict(node_vars, **connection) for node, node_vars in hosts.items()}}}))
        playbook_file = Path(workdir) / "playbook.yml"
        playbook_file.write_text(playbook)
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
            ANSIBLE_COLLECTIONS_PATH=workdir,
            ANSIBLE_NOCOLOR="1",
            PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
        )
        return subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(playbook_file)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )


class EngineHost(Swarm):
    """One Docker-in-Docker host, not in swarm mode, its engine set up by the docker_engine role."""

    def __init__(self, host_id=None, role_vars=None, image=None, owner=None):
        """``role_vars``: docker_engine variables (the SDK is never installed: no test needs it)."""
        super().__init__(host_id, overlay=HOST_NETWORK, image=image, owner=owner)
        self.role_vars = dict({"docker_engine_sdk_install": False}, **(role_vars or {}))

    @property
    def node(self):
        return self.nodes[0]

    def start(self, timeout=180):
        began = time.monotonic()
        image = self.image or node_image()
        try:
            network = self.host.networks.create(self.network_name, driver="bridge", labels=self.labels)
            self.gateway = bridge_gateway(self.host, network.id)
            self.nodes = ["hft-%s-host" % self.label_value]
            self._run_node(self.node, image)
            self.timings["role"] = self.apply_role(timeout)
            self._wait_engine(self.node, timeout)
            self.docker_client(self.node).networks.create(
                self.overlay,
                driver="bridge",
                labels=self.labels,
                ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(self.overlay_subnet))]),
            )
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - began
        _log("engine host %s up in %.1fs (role %.1fs): %s" % (
            self.id, self.timings["start"], self.timings["role"], self.node_ip(self.node)))
        return self

    def _run_node(self, name, image):
        volume = self.host.volumes.create("%s-docker" % name, labels=self.labels)
        self.host.containers.run(
            image,
            name=name,
            hostname=name,
            detach=True,
            network=self.network_name,
            labels=self.labels,
            environment={"HUBFLEET_NODE_API_ALLOW": self.gateway, "HUBFLEET_NODE_DOCKERD": "role"},
            volumes={
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                volume.name: {"bind": "/var/lib/docker", "mode": "rw"},
            },
            **DIND_OPTIONS,
        )

    def apply_role(self, timeout=180, **role_vars):
        """Run the docker_engine role on the host (``role_vars`` change its variables from now
        on); returns its duration in seconds."""
        self.role_vars.update(role_vars)
        began = time.monotonic()
        self.role_output = self.run_playbook(PLAYBOOK, self.role_vars, timeout)
        return time.monotonic() - began

    def run_playbook(self, playbook, host_vars=None, timeout=180):
        """ansible-playbook of ``playbook`` (YAML text, ``hosts: all``) on the host with this
        checkout's roles and collection; returns its output, RuntimeError when it fails."""
        result = run_playbook(playbook, {self.node: host_vars or {}}, timeout)
        if result.returncode != 0:
            raise RuntimeError("ansible-playbook failed on %s:\n%s" % (self.node, result.stdout[-4000:]))
        return result.stdout

    def daemon_config(self):
        """The host's /etc/docker/daemon.json as the role wrote it."""
        return json.loads(self.exec(self.node, "cat", "/etc/docker/daemon.json").stdout)

    def dockerd_pid(self):
        result = self.exec(self.node, "cat", "/var/run/docker.pid", check=False)
        return int(result.stdout) if result.returncode == 0 and result.stdout.strip() else None

    def restart_dockerd(self, timeout=120):
        """SIGTERM dockerd, as a package upgrade's restart does; the role's supervisor starts it
        again. Returns (seconds until the old daemon exited, seconds until the new one answers)."""
        old = self.dockerd_pid()
        began = time.monotonic()
        self.exec(self.node, "sh", "-c", "kill -TERM %d" % old)
        _wait(lambda: self.exec(self.node, "sh", "-c", "kill -0 %d" % old, check=False).returncode != 0, timeout,
              "dockerd %d of %s to exit" % (old, self.node))
        exited = time.monotonic() - began
        _wait(lambda: self.dockerd_pid() not in (None, old) and self._answers(), timeout,
              "a new dockerd on %s" % self.node)
        return exited, time.monotonic() - began

    def _answers(self):
        return self.exec(self.node, "docker", "version", "--format", "{{.Server.Version}}", check=False).returncode == 0

    def reboot(self, timeout=120):
        """Stop the host container (dockerd and every container in it end) and start it; its
        entrypoint starts the role's supervisor, hence dockerd. Returns (seconds the stop took,
        seconds from the start until the engine answers)."""
        began = time.monotonic()
        self.stop_node(self.node)
        stopped = time.monotonic()
        self.start_node(self.node, timeout)
        return stopped - began, time.monotonic() - stopped
