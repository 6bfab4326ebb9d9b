"""A real multi-node Docker Swarm on this machine, for tests: Docker-in-Docker hosts.

    swarm = Swarm().start(workers=2)              # 1 manager + 2 workers
    swarm.load_image("hubfleet/singleuser:…")      # onto every node, in parallel
    swarm.docker_client(swarm.manager).services.create(…)
    hub = SwarmHub(swarm, singleuser="hubfleet/singleuser:…").start()
    hub.spawn("alice"); hub.wait_ready("alice")
    hub.stop(); swarm.stop()

    python -m testbed.swarm up [--workers N]      # keeps the swarm; prints its id and nodes
    python -m testbed.swarm down ID               # removes that swarm
    python -m testbed.swarm down --stale          # removes swarms whose test process is gone

The nodes. Each node is a container of the node image (testbed/node/, Debian's docker.io)
running its own dockerd, with the capability flags these machines need instead of
``--privileged``, and a named volume at /var/lib/docker. All nodes share one user-defined
bridge network of their own; the manager runs ``swarm init``, the workers join, and node
labels ``hubfleet.role=hub`` (manager) and ``hubfleet.role=user`` (workers) are set. An
attachable overlay network (``hubfleet-overlay``) carries the hub and the user servers.
The machine has no IPVS, so services must use endpoint mode ``dnsrr``.

Reaching a node's engine. Each inner dockerd is served on tcp://<node ip>:2375 (plain HTTP,
socat to the unix socket), on the test bridge only — nothing is published on this machine
— and the node's firewall accepts port 2375 only from the bridge's gateway, i.e. this
machine. Containers running inside a node (user servers) cannot reach it. ``exec()`` goes
through ``docker exec`` instead, for shell commands and image loading.

Labels and clean-up. Every container, volume and network made here carries
``hubfleet.test=swarm-<id>`` (``id`` unique per Swarm) and ``hubfleet.testbed.owner=<pid>``
(the process that made it; 0 for swarms kept by the CLI). ``stop()`` removes one swarm by
its label; ``cleanup_by_label()`` removes the leftovers of crashed runs — swarms whose owner
process is gone — and nothing that belongs to a live run or to anyone else. Objects inside
the nodes (services, user containers, images) disappear with the nodes' volumes.
"""

import argparse
import io
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import requests

from hubfleet_spawner.labels import KIND_HUB, KIND_HUB_DATA, LABEL_HUB, object_labels

from testbed.hub import COMMON_CONFIG_TEMPLATE, HubAPI, bridge_gateway
from testbed.images import TEST_LABEL, hub_image, node_image

OWNER_LABEL = "hubfleet.testbed.owner"
# Removing a node with its engine volume can take minutes on a busy 2-core machine.
HOST_API_TIMEOUT = 300
NODE_API_PORT = 2375
SWARM_PORT = 2377
DEFAULT_OVERLAY = "hubfleet-overlay"
# A fixed subnet lets the hub keep one overlay address across restarts: a restarted
# container otherwise gets a new address while other nodes still resolve its name to the old one.
DEFAULT_OVERLAY_SUBNET = "10.231.0.0/16"
ROLE_LABEL = "hubfleet.role"

# What a container needs to run its own dockerd on these machines (--privileged fails:
# the kernel's bounding set lacks CAP_SYS_RESOURCE).
DIND_OPTIONS = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "cgroupns": "host",
    "tmpfs": {"/run": "", "/tmp": ""},
}


def _log(message):
    print("[testbed.swarm] %s" % message, file=sys.stderr, flush=True)


def _wait(condition, timeout, what, interval=0.25):
    """Call ``condition`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("%s: not done after %ss" % (what, timeout))
        time.sleep(interval)


def _parallel(function, items):
    """``function(item)`` for every item at once; re-raises the first failure."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(function, items))


def _owner_alive(owner):
    """Whether the process recorded in an owner label still runs (0: kept on purpose)."""
    try:
        pid = int(owner)
    except (TypeError, ValueError):
        return False
    if pid == 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_by_label(swarm_id=None, client=None):
    """Remove test-bed swarms from this machine's engine; returns the label values removed.

    With ``swarm_id``: that swarm. Without: every swarm whose owner process is gone
    (leftovers of crashed or killed runs). Only objects carrying the test bed's owner
    label are considered, so other people's objects are never touched.
    """
    client = client or docker.from_env(timeout=HOST_API_TIMEOUT)
    if swarm_id:
        doomed = {"swarm-%s" % swarm_id}
    else:
        doomed = set()
        found = (
            client.containers.list(all=True, filters={"label": OWNER_LABEL})
            + client.networks.list(filters={"label": OWNER_LABEL})
            + client.volumes.list(filters={"label": OWNER_LABEL})
        )
        for obj in found:
            labels = obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {}
            if labels.get(TEST_LABEL, "").startswith("swarm-") and not _owner_alive(labels.get(OWNER_LABEL)):
                doomed.add(labels[TEST_LABEL])
    for value in sorted(doomed):
        selector = {"label": ["%s=%s" % (TEST_LABEL, value), OWNER_LABEL]}
        containers = client.containers.list(all=True, filters=selector)
        # A stopped node's dockerd stops its containers first, so their cgroups are removed too.
        _parallel(lambda c: c.stop(timeout=10) if c.status == "running" else None, containers)
        _parallel(lambda c: c.remove(force=True, v=True), containers)
        _parallel(lambda v: v.remove(force=True), client.volumes.list(filters=selector))
        for network in client.networks.list(filters=selector):
            network.remove()
    return sorted(doomed)


class Swarm:
    """One manager and N workers, each a Docker-in-Docker container on this machine."""

    def __init__(
        self,
        swarm_id=None,
        overlay=DEFAULT_OVERLAY,
        image=None,
        owner=None,
        overlay_subnet=DEFAULT_OVERLAY_SUBNET,
        dockerd_args="",
        binds=None,
    ):
        """``dockerd_args``: extra flags for every node's dockerd (e.g. ``--insecure-registry``).
        ``binds``: {directory of this machine: path in every node}, e.g. storage all nodes share."""
        self.id = swarm_id or secrets.token_hex(3)
        self.label_value = "swarm-%s" % self.id
        self.overlay = overlay
        self.overlay_subnet = ipaddress.ip_network(overlay_subnet)
        self.dockerd_args = dockerd_args
        self.binds = dict(binds or {})
        self.image = image
        self.owner = os.getpid() if owner is None else owner
        self.host = docker.from_env(timeout=HOST_API_TIMEOUT)
        self.network_name = "hft-%s" % self.label_value
        self.nodes = []
        self.gateway = None
        self.timings = {}
        self._clients = {}
        self._ips = {}

    @classmethod
    def attach(cls, swarm_id, overlay=DEFAULT_OVERLAY, overlay_subnet=DEFAULT_OVERLAY_SUBNET):
        """The running swarm with this id (e.g. one kept by ``python -m testbed.swarm up``)."""
        swarm = cls(swarm_id, overlay=overlay, owner=0, overlay_subnet=overlay_subnet)
        names = sorted(
            c.name for c in swarm.host.containers.list(filters={"label": "%s=%s" % (TEST_LABEL, swarm.label_value)})
        )
        managers = [n for n in names if n.endswith("-manager")]
        if not managers:
            raise LookupError("no running swarm with id %r" % swarm_id)
        swarm.owner = swarm.host.containers.get(managers[0]).labels.get(OWNER_LABEL, "0")
        swarm.nodes = managers + [n for n in names if n not in managers]
        swarm.gateway = bridge_gateway(swarm.host, swarm.network_name)
        return swarm

    @property
    def labels(self):
        return {TEST_LABEL: self.label_value, OWNER_LABEL: str(self.owner)}

    @property
    def manager(self):
        return self.nodes[0]

    @property
    def workers(self):
        return self.nodes[1:]

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, workers=2, timeout=120):
        """Create the network and nodes, form the swarm, label nodes, create the overlay."""
        if workers < 0:
            raise ValueError("workers must be 0 or more, got %r" % (workers,))
        began = time.monotonic()
        image = self.image or node_image()
        try:
            network = self.host.networks.create(self.network_name, driver="bridge", labels=self.labels)
            self.gateway = bridge_gateway(self.host, network.id)
            self.nodes = ["hft-%s-manager" % self.label_value] + [
                "hft-%s-worker%d" % (self.label_value, i + 1) for i in range(workers)
            ]
            _parallel(lambda name: self._run_node(name, image), self.nodes)
            _parallel(lambda name: self._wait_engine(name, timeout), self.nodes)
            self.timings["engines"] = time.monotonic() - began
            self._form_swarm(timeout)
            self.label_node(self.manager, ROLE_LABEL, "hub")
            for worker in self.workers:
                self.label_node(worker, ROLE_LABEL, "user")
            overlay = self.docker_client(self.manager).networks.create(
                self.overlay,
                driver="overlay",
                attachable=True,
                labels=self.labels,
                ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(self.overlay_subnet))]),
            )
            self._wait_allocated(overlay, timeout)
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - began
        _log("swarm %s up in %.1fs: %s" % (self.id, self.timings["start"], ", ".join(
            "%s=%s" % (n, self.node_ip(n)) for n in self.nodes)))
        return self

    def stop(self):
        """Remove every container, volume and network of this swarm (by label)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        cleanup_by_label(self.id, self.host)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @staticmethod
    def _wait_allocated(network, timeout):
        """Swarm's allocator fills in a new overlay's driver a moment after it is created."""
        deadline = time.monotonic() + timeout
        while not network.attrs.get("Driver"):
            if time.monotonic() > deadline:
                raise TimeoutError("swarm did not allocate network %s in %ss" % (network.name, timeout))
            time.sleep(0.2)
            network.reload()

    def _run_node(self, name, image):
        volume = self.host.volumes.create("%s-docker" % name, labels=self.labels)
        self.host.containers.run(
            image,
            name=name,
            hostname=name,
            detach=True,
            network=self.network_name,
            labels=self.labels,
            environment={"HUBFLEET_NODE_API_ALLOW": self.gateway, "HUBFLEET_DOCKERD_ARGS": self.dockerd_args},
            volumes={
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                volume.name: {"bind": "/var/lib/docker", "mode": "rw"},
                **{source: {"bind": target, "mode": "rw"} for source, target in self.binds.items()},
            },
            **DIND_OPTIONS,
        )

    def _wait_engine(self, name, timeout):
        url = "http://%s:%d/_ping" % (self.node_ip(name), NODE_API_PORT)

        def answers():
            container = self.host.containers.get(name)
            if container.status != "running":
                raise RuntimeError("node %s exited:\n%s" % (name, container.logs(tail=30).decode(errors="replace")))
            try:
                return requests.get(url, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        _wait(answers, timeout, "the engine of node %s" % name)

    def _form_swarm(self, timeout):
        manager = self.docker_client(self.manager)
        manager.swarm.init(advertise_addr=self.node_ip(self.manager), listen_addr="0.0.0.0:%d" % SWARM_PORT)
        manager.swarm.reload()
        _parallel(self._join, self.workers)

        def all_ready():
            states = [n.attrs["Status"]["State"] for n in manager.nodes.list()]
            return len(states) == len(self.nodes) and all(s == "ready" for s in states)

        _wait(all_ready, timeout, "all %d nodes ready in swarm %s" % (len(self.nodes), self.id))

    def _join(self, worker):
        manager = self.docker_client(self.manager)
        manager.swarm.reload()
        self.docker_client(worker).swarm.join(
            remote_addrs=["%s:%d" % (self.node_ip(self.manager), SWARM_PORT)],
            join_token=manager.swarm.attrs["JoinTokens"]["Worker"],
            advertise_addr=self.node_ip(worker),
            listen_addr="0.0.0.0:%d" % SWARM_PORT,
        )

    def add_worker(self, timeout=120):
        """Start one more node, join it as a worker labelled ``hubfleet.role=user``; returns its name."""
        name = "hft-%s-worker%d" % (self.label_value, len(self.nodes))
        self._run_node(name, self.image or node_image())
        self.nodes.append(name)
        self._wait_engine(name, timeout)
        self._join(name)
        _wait(lambda: self.node_state(name) == "ready", timeout, "node %s ready in swarm %s" % (name, self.id))
        self.label_node(name, ROLE_LABEL, "user")
        return name

    # --- nodes ----------------------------------------------------------------------------

    def node_ip(self, node):
        """The node's address on the test bridge (where its engine and published ports are)."""
        if node not in self._ips:
            container = self.host.containers.get(node)
            self._ips[node] = container.attrs["NetworkSettings"]["Networks"][self.network_name]["IPAddress"]
        return self._ips[node]

    def docker_client(self, node):
        """A ``docker.DockerClient`` for the node's own engine."""
        if node not in self._clients:
            self._clients[node] = docker.DockerClient(
                base_url="tcp://%s:%d" % (self.node_ip(node), NODE_API_PORT), version="auto", timeout=120
            )
        return self._clients[node]

    def swarm_node(self, node):
        """The swarm's ``Node`` object for a node (container) name, seen from the manager."""
        for candidate in self.docker_client(self.manager).nodes.list():
            if candidate.attrs["Description"]["Hostname"] == node:
                return candidate
        raise LookupError("node %r is not in swarm %s (nodes: %s)" % (node, self.id, ", ".join(self.nodes)))

    def _update_node(self, node, change):
        swarm_node = self.swarm_node(node)
        spec = swarm_node.attrs["Spec"]
        change(spec)
        swarm_node.update(spec)

    def label_node(self, node, key, value):
        """Set a node label (``value`` None removes it)."""

        def change(spec):
            labels = spec.setdefault("Labels", {})
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value

        self._update_node(node, change)

    def set_availability(self, node, availability):
        """Make a node ``active``, ``pause`` or ``drain``."""
        if availability not in ("active", "pause", "drain"):
            raise ValueError("availability must be active, pause or drain, got %r" % (availability,))
        self._update_node(node, lambda spec: spec.__setitem__("Availability", availability))

    def stop_node(self, node, timeout=10):
        """Stop a node's host container, as a lost machine: its engine and servers go with it."""
        self.host.containers.get(node).stop(timeout=timeout)
        client = self._clients.pop(node, None)
        if client is not None:
            client.close()

    def start_node(self, node, timeout=120):
        """Start a stopped node's host container again and wait until its engine answers.

        The address on the test bridge must stay the same: the swarm knows its nodes by it.
        """
        address = self._ips.pop(node, None)
        self.host.containers.get(node).start()
        if address is not None and self.node_ip(node) != address:
            raise RuntimeError("node %s came back at %s, not %s" % (node, self.node_ip(node), address))
        self._wait_engine(node, timeout)

    def node_state(self, node):
        """The node's state in the swarm, as the manager sees it (ready, down, ...)."""
        return self.swarm_node(node).attrs["Status"]["State"]

    def exec(self, node, *command, check=True, stdin=None):
        """Run a command in the node (``docker exec``); returns the CompletedProcess."""
        result = subprocess.run(
            ["docker", "exec"] + (["-i"] if stdin is not None else []) + [node] + list(command),
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                "%s on %s exited %d: %s" % (" ".join(command), node, result.returncode, result.stderr.decode(errors="replace"))
            )
        return result

    def load_image(self, ref, nodes=None):
        """Copy an image of this machine onto nodes (default: all), skipping those that have it.

        One ``docker save`` streams to one ``docker exec -i NODE docker load`` per node at once.
        """
        image_id = self.host.images.get(ref).id
        wanted = [n for n in (nodes or self.nodes) if not self._has_image(n, ref, image_id)]
        if not wanted:
            return []
        began = time.monotonic()
        save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
        loads = {
            node: subprocess.Popen(
                ["docker", "exec", "-i", node, "docker", "load", "--quiet"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for node in wanted
        }
        broken = set()
        while True:
            chunk = save.stdout.read(1 << 20)
            if not chunk:
                break
            for node, load in loads.items():
                if node in broken:
                    continue
                try:
                    load.stdin.write(chunk)
                except BrokenPipeError:
                    broken.add(node)
        errors = []
        if save.wait() != 0:
            errors.append("docker save %s exited %d" % (ref, save.returncode))
        for node, load in loads.items():
            try:
                load.stdin.close()
            except BrokenPipeError:
                pass
            err = load.stderr.read()
            load.wait()
            if load.returncode != 0 or not self._has_image(node, ref, image_id):
                errors.append("loading %s on %s: %s" % (ref, node, err.decode(errors="replace").strip()))
        if errors:
            raise RuntimeError("; ".join(errors))
        self.timings["load %s" % ref] = time.monotonic() - began
        _log("loaded %s onto %s in %.1fs" % (ref, ", ".join(wanted), time.monotonic() - began))
        return wanted

    def _has_image(self, node, ref, image_id):
        try:
            return self.docker_client(node).images.get(ref).id == image_id
        except docker.errors.ImageNotFound:
            return False


# --- the hub, inside the swarm --------------------------------------------------------------

HUB_DATA = "/srv/jupyterhub/data"
HUB_CONFIG = "/etc/jupyterhub/jupyterhub_config.py"
HUB_PROXY_PORT = 8000
# The hub image's jupyterhub user (roles/images/files/hub/Dockerfile) and the filter's socket.
HUB_UID = 901
FILTER_SOCKET = "/run/hubfleet-filter/docker.sock"

SWARM_HUB_CONFIG_TEMPLATE = (
    """\
import json, os
c = get_config()  # noqa
c.JupyterHub.ip = "0.0.0.0"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_port = 8081
c.JupyterHub.hub_connect_ip = {hub_connect_ip!r}
c.JupyterHub.db_url = "sqlite:///{data}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{data}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "/dev/shm/jupyterhub-proxy.pid"  # fresh tmpfs at every start, as the role sets it
c.DockerSpawner.network_name = {overlay!r}
c.DockerSpawner.use_internal_ip = True
c.SwarmSpawner.network_name = {overlay!r}
"""
    + COMMON_CONFIG_TEMPLATE
)


def _tar_one(name, data, mode=0o600, owner=None):
    """A tar archive holding one file (owned by ``owner``, the hub's uid by default), for ``put_archive``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.uid = info.gid = HUB_UID if owner is None else owner
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class SwarmHub(HubAPI):
    """JupyterHub (with CHP) as a container on the swarm manager, on the attachable overlay.

    As in a deployment, the hub runs as the image's non-root user and reaches the manager's
    engine only through the hub's Docker API filter: a second container of the hub image on
    the manager, the only one that mounts the Docker socket, serving the filtered API on a
    Unix socket in a volume it shares with the hub (``docker_filter=False``: the hub mounts
    the socket itself). The hub's database and cookie secret live in a volume on
    the manager, so ``restart()`` keeps users and servers. The hub has a fixed address on
    the overlay (``hub_connect_ip``), the same after a restart. The proxy is published on
    the manager's address: the tests reach ``http://<manager ip>:8000``.
    """

    def __init__(self, swarm, singleuser, spawner_class="hubfleet-swarm", extra_config="", image=None, hub_label=None,
                 docker_filter=True, filter_policy=None, singleuser_nodes=None):
        """``singleuser_nodes``: the nodes that get the singleuser image (default every node; a
        hub whose spawner never inspects the image, ``pull_policy = "skip"``, needs only the workers)."""
        self.swarm = swarm
        self.singleuser = singleuser
        self.singleuser_nodes = singleuser_nodes
        self.spawner_class = spawner_class
        self.extra_config = extra_config
        self.image = image
        self.hub_label = hub_label or "hfs" + secrets.token_hex(3)
        self.prefix = self.hub_label
        self.container_name = "%s-hub" % self.hub_label
        # Near the top of the overlay's range, away from the addresses Docker hands out first.
        self.overlay_ip = str(swarm.overlay_subnet.broadcast_address - 6)
        self.data_volume = "%s-hub-data" % self.hub_label
        self.api_token = secrets.token_hex(16)
        self.overrides = {}
        self.container = None
        self.docker_filter = docker_filter
        self.filter_policy = filter_policy or {}
        self.filter_container_name = "%s-docker-filter" % self.hub_label
        self.filter_volume = "%s-docker-api" % self.hub_label

    @property
    def url(self):
        return "http://%s:%d" % (self.swarm.node_ip(self.swarm.manager), HUB_PROXY_PORT)

    @property
    def docker(self):
        """The manager's engine, where the hub runs."""
        return self.swarm.docker_client(self.swarm.manager)

    def labels(self, kind):
        return object_labels(self.hub_label, kind, extra=self.swarm.labels)

    def config(self):
        return SWARM_HUB_CONFIG_TEMPLATE.format(
            proxy_port=HUB_PROXY_PORT,
            hub_connect_ip=self.overlay_ip,
            data=HUB_DATA,
            overlay=self.swarm.overlay,
            api_token=self.api_token,
            spawner_class=self.spawner_class,
            image=self.singleuser,
            prefix=self.prefix,
            hub_label=self.hub_label,
            overrides=HUB_DATA + "/overrides.json",
        ) + "\n" + self.extra_config + "\n"

    def policy(self):
        """The Docker API filter's policy: this hub's label and overlay; pulls allowed and no
        memory or CPU limit required, as for the test bed's single-host hub."""
        from hubfleet_spawner.docker_filter.rules import Policy

        settings = {"hub": self.hub_label, "networks": [self.swarm.overlay], "allow_pull": True,
                    "require_memory_limit": False, "require_cpu_limit": False}
        settings.update(self.filter_policy)
        return Policy(**settings)

    def _socket_gid(self):
        """The group of the manager's Docker socket."""
        return self.swarm.exec(self.swarm.manager, "stat", "-c", "%g", "/var/run/docker.sock").stdout.decode().strip()

    def start_filter(self, timeout=30):
        """Start the Docker API filter container on the manager; wait for its socket."""
        socket_gid = self._socket_gid()
        self.docker.volumes.create(self.filter_volume, labels=self.labels("docker-api"))
        docker_filter = self.docker.containers.run(
            self.image,
            ["python", "-m", "hubfleet_spawner.docker_filter", "--policy", json.dumps(self.policy().to_dict()),
             # DEBUG: a line per allowed request, which tests count (test_swarm_spawner).
             "--listen", FILTER_SOCKET, "--log-level", "DEBUG"],
            name=self.filter_container_name,
            detach=True,
            restart_policy={"Name": "unless-stopped"},
            labels=self.labels("docker-filter"),
            user="902:%d" % HUB_UID,
            group_add=[socket_gid],
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            volumes={
                "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
                self.filter_volume: {"bind": os.path.dirname(FILTER_SOCKET), "mode": "rw"},
            },
        )

        def listening():
            docker_filter.reload()
            if docker_filter.status not in ("running", "created"):
                raise RuntimeError("the Docker API filter exited:\n" + docker_filter.logs(tail=30).decode(errors="replace"))
            return docker_filter.exec_run(["test", "-S", FILTER_SOCKET]).exit_code == 0

        _wait(listening, timeout, "the Docker API filter's socket")

    def start(self, timeout=90):
        """Load the images, create the data volume and hub container, wait for the API."""
        self.image = self.image or hub_image()
        self.swarm.load_image(self.image, [self.swarm.manager])
        self.swarm.load_image(self.singleuser, self.singleuser_nodes)
        self.docker.volumes.create(self.data_volume, labels=self.labels(KIND_HUB_DATA))
        if self.docker_filter:
            self.start_filter()
            engine = {self.filter_volume: {"bind": os.path.dirname(FILTER_SOCKET), "mode": "rw"}}
        else:
            engine = {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}}
        self.container = self.docker.containers.create(
            self.image,
            name=self.container_name,
            hostname=self.container_name,
            labels=self.labels(KIND_HUB),
            network=self.swarm.overlay,
            networking_config={
                self.swarm.overlay: self.docker.api.create_endpoint_config(ipv4_address=self.overlay_ip)
            },
            ports={"%d/tcp" % HUB_PROXY_PORT: HUB_PROXY_PORT},
            # As the single-host role runs the hub: back by itself after its engine restarts.
            restart_policy={"Name": "unless-stopped"},
            # Without the filter the hub opens the socket itself, through the socket's group (root
            # without capabilities could open it but not read its own 0600 config).
            user="%d:%d" % (HUB_UID, HUB_UID),
            group_add=[] if self.docker_filter else [self._socket_gid()],
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            environment={"DOCKER_HOST": "unix://" + FILTER_SOCKET} if self.docker_filter else {"DOCKER_HOST": ""},
            volumes=dict(engine, **{self.data_volume: {"bind": HUB_DATA, "mode": "rw"}}),
        )
        self.container.put_archive(os.path.dirname(HUB_CONFIG), _tar_one(os.path.basename(HUB_CONFIG), self.config().encode()))
        self.container.start()
        return self.wait_up(timeout)

    def wait_up(self, timeout=90):
        def answers():
            self.container.reload()
            if self.container.status not in ("running", "created"):
                raise RuntimeError("the hub container exited:\n" + self.log_tail())
            try:
                return requests.get(self.api_url, timeout=2).status_code == 200
            except requests.RequestException:
                return False

        try:
            _wait(answers, timeout, "the hub's API at %s" % self.api_url)
        except TimeoutError as error:
            raise TimeoutError("%s\n%s" % (error, self.log_tail())) from None
        return self

    def restart(self, timeout=90):
        """Restart the hub container; its database volume keeps users and servers."""
        self.container.restart(timeout=15)
        return self.wait_up(timeout)

    def set_overrides(self, username, **traits):
        """Spawner trait values for one user's next spawns (applied by pre_spawn_hook)."""
        self.overrides[username] = traits
        self.container.put_archive(HUB_DATA, _tar_one("overrides.json", json.dumps(self.overrides).encode()))

    def log_tail(self, lines=60):
        if self.container is None:
            return ""
        try:
            return self.container.logs(tail=lines).decode(errors="replace")
        except docker.errors.NotFound:
            return ""

    def stop(self):
        """Remove the hub, its users' services and containers, and its volumes, by label."""
        client = self.docker
        selector = {"label": "%s=%s" % (LABEL_HUB, self.hub_label)}
        in_swarm = client.info()["Swarm"]["LocalNodeState"] == "active"  # testbed.host.EngineHost is not
        for service in client.services.list(filters=selector) if in_swarm else []:
            service.remove()
        for container in client.containers.list(all=True, filters=selector):
            container.remove(force=True)
        for volume in client.volumes.list(filters=selector):
            volume.remove(force=True)
        self.container = None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m testbed.swarm", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a swarm and keep it (remove it with `down ID`)")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--load", action="append", default=[], metavar="IMAGE", help="load an image onto every node")
    down = commands.add_parser("down", help="remove a swarm, or with --stale every swarm whose test run is gone")
    down.add_argument("swarm_id", nargs="?")
    down.add_argument("--stale", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "up":
        swarm = Swarm(owner=0).start(workers=args.workers)
        for ref in args.load:
            swarm.load_image(ref)
        print("swarm %s" % swarm.id)
        for node in swarm.nodes:
            print("%s tcp://%s:%d" % (node, swarm.node_ip(node), NODE_API_PORT))
        return 0
    if bool(args.swarm_id) == bool(args.stale):
        parser.error("down needs either a swarm id or --stale")
    removed = cleanup_by_label(args.swarm_id)
    print("removed: %s" % (", ".join(removed) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
