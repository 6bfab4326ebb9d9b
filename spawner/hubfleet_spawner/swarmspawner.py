"""SwarmSpawner: one Docker Swarm service (one replica) per user server.

Shares DockerSpawner's names, escaping, volume templating, Docker client and labels;
only how the server runs differs. The hub must run on a manager node (or talk to
one) and be attached to ``network_name``, an attachable overlay network.

Volumes: named volumes are local to the node a task lands on. The ownership step runs
there: a one-shot prep service placed as the server would be, the server then pinned to
the node it ran on. A user's files follow
them to another node only with a volume driver that reaches shared storage, e.g.
``volume_driver = "local"`` with ``volume_driver_options = {"type": "nfs",
"o": "addr=10.0.0.5,rw,nfsvers=4", "device": ":/export/home/{username}"}``.
"""

import asyncio
import dataclasses
import time

import docker.errors
from traitlets import Bool, CaselessStrEnum, Callable, Dict, Float, List, TraitError, Unicode, Union, default, validate

from . import labels, ownership
from .dockerspawner import DockerSpawner, _docker_message
from .errors import SpawnError
from .reflector import TASK_ACTIVE, SwarmView, newest_task, task_in_doubt
from .runtime import Runtime
from .specs import CREATE_KWARGS_AS_CONTAINER_SPEC, ServiceOptions, freeze, service_mounts, service_spec, thaw
from .volumes import render_nested

# Task states, in the order a healthy task passes through them.
TASK_PROGRESS = {
    "new": (30, "Service created, waiting for the scheduler"),
    "pending": (35, "Waiting for a node that satisfies the placement"),
    "assigned": (45, "Assigned to node {node}"),
    "accepted": (50, "Accepted by node {node}"),
    "preparing": (55, "Preparing on node {node} (pulling the image if needed)"),
    "ready": (60, "Ready on node {node}"),
    "starting": (65, "Starting on node {node}"),
    "running": (75, "Running on node {node}"),
}
TASK_FAILED = {"failed", "rejected", "orphaned", "remove", "shutdown"}
# The node state in which the node's tasks no longer run as far as the swarm knows: a node
# whose host is gone keeps its tasks "running" in the swarm's view until it comes back.
# Not "unknown" or "disconnected": a restarted manager reports every worker "unknown" until
# it reconnects (its servers run on), and a lost node turns "down" within seconds anyway.
NODE_LOST = {"down"}


def lost_node(task, node):
    """The hostname of the node a running task was lost with, or None if it still runs.

    ``task`` and ``node`` are a swarm task and its node (``inspect_node``; None if the
    swarm no longer knows the node). A task whose node is down (or removed) is lost even
    though its last reported state is still "running": nobody is left to report otherwise.
    A node the manager has not heard from yet ("unknown", "disconnected") is not lost.
    """
    if not task or not task.get("NodeID"):
        return None
    if node is None:
        return task["NodeID"][:12]
    if node.get("Status", {}).get("State") in NODE_LOST:
        return node.get("Description", {}).get("Hostname") or task["NodeID"][:12]
    return None


def _where_files_are(hostname, shared_storage):
    if shared_storage:
        return "Your files are on shared storage, so this server has them."
    return (
        "Your files are on volumes of node %s: a server started while it is down runs on "
        "another node, with empty volumes. Your files are back when %s returns; ask an "
        "administrator if you need them sooner." % (hostname, hostname)
    )


def lost_node_reason(hostname, shared_storage):
    """What the user is told when their server's node was lost (the "not running" page)."""
    return (
        "The node your server ran on (%s) is down, so your server stopped: unsaved changes "
        "and the state of running kernels are lost. %s" % (hostname, _where_files_are(hostname, shared_storage))
    )


def lost_node_start_message(hostname, shared_storage):
    """What the next start tells the user (the spawn page) after a node was lost."""
    return "Your last server was lost with node %s. %s" % (hostname, _where_files_are(hostname, shared_storage))


def image_registry(reference):
    """The registry an image reference is pulled from, as Docker reads it: the first path
    component when it has a "." or ":" or is "localhost", else Docker Hub ("docker.io")."""
    first, slash, _rest = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def task_failure_message(state, error, image, node, what="this server"):
    """What a failed spawn says about the swarm task (for ``what``) that ``state``d with ``error``.

    A task rejected for lack of its image (the node could not pull it) names the node, the
    image and the registry, and says what to check.
    """
    message = "The swarm task for %s %s: %s" % (what, state, error or "no reason given")
    if error and "No such image" in error and image:
        message += (
            ". Node %s does not have the image %s and could not pull it from the registry %s: the registry is "
            "down or unreachable from the node, or it does not have that image. Ask an administrator to check "
            "the registry or to load the image onto the nodes." % (node, image, image_registry(image))
        )
    return message


def _always(value):
    return True


# DockerSpawner options a swarm service cannot honour: refused when configured (the
# TraitError names the option), with (does this value need a container?, what to do instead).
REFUSED_OPTIONS = {
    "post_start_cmd": (bool, "the hub cannot exec into a task's container on another node; run the command "
                       "from the image's entrypoint (docker-stacks images: /usr/local/bin/before-notebook.d/)"),
    "use_internal_ip": (lambda value: not value, "services publish no port: the hub always reaches the task's "
                        "address on network_name (or its name, with use_internal_hostname)"),
    "host_ip": (_always, "services publish no port on a host; the hub reaches the task on network_name"),
    "links": (bool, "services cannot be linked; put what they need on network_name"),
    "remove": (lambda value: not value, "a stopped server's service is always removed (its files live in volumes)"),
    "boot_concurrency": (lambda value: value > 0, "the swarm spreads servers over its nodes, each boots its own"),
    "boot_slot_timeout": (_always, "there are no boot turns on the swarm (see boot_concurrency)"),
    "container_view_resync_interval": (_always, "the SwarmSpawner's view of services and tasks lists every "
                                       "service_view_interval"),
    "orphan_grace_period": (_always, "services are not reaped; a service left by a killed hub is replaced at the "
                            "user's next start"),
    "extra_host_config": (lambda value: bool(value) and not callable(value),
                          "use extra_container_spec, extra_resources_spec or extra_task_spec"),
    "root_start": (bool, "services cannot add the capabilities a root-start image needs to switch users; use an "
                   "image with a non-root USER"),
    "group_volumes": (bool, "a group's volume would be one per node, each member's on the node their task ran on; "
                      "use a volume driver that reaches shared storage with `volumes`"),
    "existing_volumes": (bool, "the hub sees only the manager's volumes, not those on the nodes, so it cannot tell "
                         "which exist; mount them with `volumes` (swarm creates a missing one on the task's node)"),
    "gpu_devices": (bool, "the swarm gives each service GPUs of its node's generic resources (gpu_resource_kind); "
                    "advertise them on the nodes with docker_engine_node_generic_resources"),
    "remove_volumes_on_delete": (bool, "the hub reaches only the manager's engine, not the volumes on the nodes; "
                                 "remove a user's volumes on each node with the hubfleet.jupyterhub.user_volumes "
                                 "module (state: absent)"),
}


def refuse_extra_create_kwargs(value, where="SwarmSpawner.extra_create_kwargs"):
    """Refuse extra_create_kwargs keys a service has no place for (TraitError naming them)."""
    unknown = sorted(k for k in value or {} if k != "user" and k not in CREATE_KWARGS_AS_CONTAINER_SPEC)
    if unknown:
        raise TraitError(
            "%s: %s cannot be honoured by a swarm service. It takes %s; use extra_container_spec for the rest."
            % (where, ", ".join(unknown), ", ".join(sorted(set(CREATE_KWARGS_AS_CONTAINER_SPEC) | {"user"})))
        )


class ServiceRuntime(Runtime):
    """A user server as a one-replica swarm service (SwarmSpawner)."""

    noun = "swarm service"
    create_progress = 20

    def announce(self):
        spawner = self.spawner
        if spawner.lost_on_node:
            # Said on the spawn page: the user's files may not be where this server runs.
            spawner.emit(6, lost_node_start_message(spawner.lost_on_node, bool(spawner.volume_driver)))
            spawner.lost_on_node = ""

    async def replace_stale(self, settings):
        # A service is never reused: a new one applies the current image and settings.
        for stale in await self.spawner.find_services():
            await self.spawner.remove_service(stale["ID"])
        return ""

    async def create(self, settings):
        node_id = await self.spawner.prepare_on_node(settings)
        if node_id:
            settings = self.spawner.pinned_to(settings, node_id)
        created = await self.spawner.docker.call("create_service", **service_spec(settings))
        self.spawner.service_id = created["ID"]
        self.spawner.view.note_service(created["ID"], settings.name, thaw(settings.labels))
        return created["ID"]

    async def run(self, settings, service_id):
        try:
            return await self.spawner.wait_for_task()
        except SpawnError:
            await self.spawner.remove_service(service_id)
            raise

    async def address(self, settings, task):
        if self.spawner.use_internal_hostname:
            return settings.name, settings.port
        ip = self.spawner.task_address(task)
        if not ip:
            raise SpawnError("The server's task has no address on network %r." % settings.network)
        return ip, settings.port

    async def check_alive(self, service_id):
        task = self.spawner.newest(await self.spawner.tasks())
        status = (task or {}).get("Status", {})
        if status.get("State") != "running":
            raise SpawnError(
                "The server's task stopped while starting (%s): %s"
                % (status.get("State"), status.get("Err") or status.get("ContainerStatus", {}).get("ExitCode"))
            )


class SwarmSpawner(DockerSpawner):
    """Spawn each user server as a one-replica swarm service on an overlay network."""

    runtime_class = ServiceRuntime
    places_servers = True

    network_name = Unicode(
        "jupyterhub",
        help="The attachable overlay network user services join; the hub must be attached to it too.",
    ).tag(config=True)

    use_internal_ip = Bool(
        True,
        help="Reach the server at its task's address on `network_name` (the default; swarm services publish no ports).",
    ).tag(config=True)

    endpoint_mode = CaselessStrEnum(
        ["dnsrr", "vip"],
        default_value="dnsrr",
        help="Service endpoint mode. `dnsrr` needs no IPVS and a virtual IP gains nothing for one task.",
    ).tag(config=True)

    placement_constraints = Union(
        [List(Unicode()), Callable()],
        help="""Placement constraints, e.g. ["node.labels.hubfleet.pool==gpu"], or
        callable(spawner) -> list (may be async), so a profile or group can pick a pool.""",
    ).tag(config=True)

    placement_preferences = Union(
        [List(), Callable()],
        help="""Placement preferences, e.g. [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]
        or ["spread=node.labels.zone"], or a callable(spawner) -> list.""",
    ).tag(config=True)

    keep_off_managers = Bool(
        True,
        help="Add `node.role==worker` to the constraints while any worker node is ready and active, "
        "so user servers stay off managers when there are workers.",
    ).tag(config=True)

    extra_resources_spec = Union([Dict(), Callable()], help="Merged into TaskTemplate.Resources.").tag(config=True)
    extra_container_spec = Union([Dict(), Callable()], help="Merged into TaskTemplate.ContainerSpec.").tag(config=True)
    extra_placement_spec = Union([Dict(), Callable()], help="Merged into TaskTemplate.Placement.").tag(config=True)
    extra_task_spec = Union([Dict(), Callable()], help="Merged into the TaskTemplate.").tag(config=True)
    extra_endpoint_spec = Union([Dict(), Callable()], help="Merged into the service's EndpointSpec.").tag(config=True)

    volume_driver = Unicode(
        "",
        help="Volume driver for the named volumes of user services (created by swarm on the task's node).",
    ).tag(config=True)

    volume_driver_options = Dict(
        help="Options for `volume_driver`; strings may use the name fields, e.g. a per-user NFS device.",
    ).tag(config=True)

    gpu_resource_kind = Unicode(
        "NVIDIA-GPU",
        help="""The generic resource a node's GPUs are advertised as (dockerd
        `node-generic-resources`, e.g. "NVIDIA-GPU=GPU-1a2b…"): a server asking for
        `gpus` reserves that many, so it lands on a node with enough free, and the
        node's NVIDIA runtime gives the task the reserved devices.""",
    ).tag(config=True)

    service_view_interval = Float(
        help="""Seconds between the listings of the view every poll reads: this hub's
        services (with the swarm's count of their running tasks) and their tasks, two
        Docker requests whatever the number of servers. Default: the poll interval
        (Spawner.poll_interval), so a server that stopped is seen at the next poll.
        One view serves the whole hub: the first server's value counts.""",
    ).tag(config=True)

    @default("service_view_interval")
    def _service_view_interval_default(self):
        return float(self.poll_interval)

    pending_grace = Float(
        5.0,
        help="Seconds a task may stay pending with a scheduler error (no suitable node) before the spawn fails with it.",
    ).tag(config=True)

    @validate(*REFUSED_OPTIONS)
    def _refuse_container_only_options(self, proposal):
        name = proposal.trait.name
        needs_container, instead = REFUSED_OPTIONS[name]
        if needs_container(proposal.value):
            raise TraitError(
                "SwarmSpawner.%s = %r cannot be honoured by a swarm service: %s." % (name, proposal.value, instead)
            )
        return proposal.value

    @validate("extra_create_kwargs")
    def _refuse_container_only_create_kwargs(self, proposal):
        if not callable(proposal.value):
            refuse_extra_create_kwargs(proposal.value)
        return proposal.value

    service_id = Unicode("")
    # The node the last server was lost with (kept across stops, for the next start's message).
    lost_on_node = Unicode("")

    @default("pull_policy")
    def _pull_policy_default(self):
        # Each node pulls for itself; the hub's engine need not hold the image.
        return "skip"

    def load_state(self, state):
        super().load_state(state)
        self.service_id = state.get("service_id", "")
        self.lost_on_node = state.get("lost_on_node", "")

    def get_state(self):
        state = super().get_state()
        if self.service_id:
            state["service_id"] = self.service_id
            state["service_name"] = self.container_name
        if self.lost_on_node:
            state["lost_on_node"] = self.lost_on_node
        return state

    def clear_state(self):
        super().clear_state()
        self.service_id = ""

    @property
    def view(self):
        """The hub's shared view of its services and tasks (what poll reads)."""
        return SwarmView.shared(self.docker, self.hub_label, self.log, self.service_view_interval)

    # --- building the service -------------------------------------------------------

    async def placement(self):
        constraints = list(await self._resolve(self.placement_constraints) or [])
        profile = self.chosen_profile()
        if profile is not None:
            constraints += [c for c in profile.constraints if c not in constraints]
        if self.keep_off_managers and not any(c.replace(" ", "").startswith("node.role") for c in constraints):
            nodes = await self.docker.call("nodes", filters={"role": "worker"})
            if any(
                n.get("Status", {}).get("State") == "ready" and n.get("Spec", {}).get("Availability") == "active"
                for n in nodes
            ):
                constraints.append("node.role==worker")
        preferences = []
        for preference in await self._resolve(self.placement_preferences) or []:
            if isinstance(preference, str):
                strategy, descriptor = preference.split("=", 1) if "=" in preference else (preference, "")
                preference = {strategy.capitalize(): {"SpreadDescriptor": descriptor}}
            preferences.append(preference)
        placement = {"Constraints": constraints}
        if preferences:
            placement["Preferences"] = preferences
        placement.update(await self._resolve(self.extra_placement_spec) or {})
        return placement

    async def resolve_settings(self, image, image_info):
        """DockerSpawner's settings plus what only a service needs (placement, driver, extra specs)."""
        settings = await super().resolve_settings(image, image_info)
        try:  # what callables returned
            refuse_extra_create_kwargs(settings.extra_create)
            if settings.extra_host:
                raise TraitError("SwarmSpawner.extra_host_config: %s." % REFUSED_OPTIONS["extra_host_config"][1])
        except TraitError as e:
            raise SpawnError("This hub's configuration cannot start a swarm service: %s" % e) from None
        driver = None
        if self.volume_driver:
            driver = {"Name": self.volume_driver, "Options": render_nested(self.volume_driver_options, settings.names)}
        service = ServiceOptions.create(
            placement=await self.placement(),
            endpoint_mode=self.endpoint_mode,
            volume_driver=driver,
            extra_container_spec=await self._resolve(self.extra_container_spec) or {},
            extra_resources_spec=await self._resolve(self.extra_resources_spec) or {},
            extra_task_spec=await self._resolve(self.extra_task_spec) or {},
            extra_endpoint_spec=await self._resolve(self.extra_endpoint_spec) or {},
            gpu_resource_kind=self.gpu_resource_kind,
        )
        return settings.replace(service=service, publish_on=None)

    # --- Docker steps ----------------------------------------------------------------

    async def check_network(self):
        try:
            network = await self.docker.call("inspect_network", self.network_name)
        except docker.errors.NotFound:
            raise SpawnError(
                "The swarm network %r (SwarmSpawner.network_name) does not exist. "
                "Ask an administrator to create it as an attachable overlay network." % self.network_name
            )
        # A swarm network shows no driver until swarm's allocator has placed it (a moment
        # after it is created); swarm networks are overlays.
        driver = network.get("Driver") or ("overlay" if network.get("Scope") == "swarm" else "driverless")
        if driver != "overlay":
            raise SpawnError(
                "The network %r is a %s network; swarm services need an overlay network." % (self.network_name, driver)
            )

    async def find_services(self):
        found = await self.docker.call(
            "services", filters={"label": labels.label_filters(hub=self.hub_label, user=self.user.name)}
        )
        return [s for s in found if labels.matches(s.get("Spec", {}).get("Labels"), server=self.name or "")]

    async def remove_service(self, service_id):
        try:
            await self.docker.call("remove_service", service_id)
        except docker.errors.NotFound:
            pass
        self.view.forget_service(service_id)

    async def tasks(self, service_id=None):
        return await self.docker.call("tasks", filters={"service": service_id or self.service_id})

    newest = staticmethod(newest_task)

    async def task_node(self, task):
        """The task's node (inspect_node), or None if the swarm no longer has it."""
        try:
            return await self.docker.call("inspect_node", task["NodeID"])
        except docker.errors.NotFound:
            return None

    async def node_name(self, task):
        node_id = task.get("NodeID")
        if not node_id:
            return "?"
        try:
            node = await self.docker.call("inspect_node", node_id)
        except docker.errors.APIError:
            return node_id[:12]
        return node.get("Description", {}).get("Hostname") or node_id[:12]

    def task_address(self, task):
        for attachment in task.get("NetworksAttachments") or []:
            if attachment.get("Network", {}).get("Spec", {}).get("Name") == self.network_name:
                addresses = attachment.get("Addresses") or []
                if addresses:
                    return addresses[0].split("/")[0]
        return None

    async def wait_for_task(self, service_id=None, until="running", report=True):
        """Follow the newest task of ``service_id`` (default: this server's) until its
        state is ``until``, reporting its states on the spawn page when ``report``;
        return that task. SpawnError when it fails or cannot be placed."""
        reported = None
        pending_error_since = None
        delay = 0.2
        what = "this server" if report else "preparing your files"
        while True:
            task = self.newest(await self.tasks(service_id))
            if task is not None:
                status = task.get("Status", {})
                state = status.get("State", "new")
                if report and state != reported and state in TASK_PROGRESS:
                    progress, message = TASK_PROGRESS[state]
                    self.emit(progress, message.format(node=await self.node_name(task)))
                    reported = state
                if state == until:
                    return task
                if state in TASK_FAILED or state == "complete":
                    image = task.get("Spec", {}).get("ContainerSpec", {}).get("Image", "")
                    raise SpawnError(task_failure_message(
                        state, status.get("Err") or status.get("Message"), image, await self.node_name(task), what))
                if state == "pending" and status.get("Err"):
                    pending_error_since = pending_error_since or time.monotonic()
                    if time.monotonic() - pending_error_since > self.pending_grace:
                        raise SpawnError("The swarm cannot place this server: %s" % status["Err"])
                else:
                    pending_error_since = None
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    # --- the ownership step, on the node that will run the server ------------------------

    async def prepare_on_node(self, settings):
        """Run the ownership step (ownership.py) as a one-shot service placed as the server
        would be; return the ID of the node it ran on (the server is pinned there, where
        its volumes now are), or None when nothing needs preparing."""
        if not self.prepare_volumes:
            return None
        try:
            owner = ownership.owner_spec(settings.user, environment=settings.environment_list)
        except ownership.OwnerError as e:
            raise SpawnError("Could not prepare your files: %s" % e) from None
        to_prepare = ownership.mounts_to_prepare_on_node(settings.volume_plan())
        if owner is None or not to_prepare:
            return None
        targets = {m.target for m in to_prepare}
        mounts = [m for m in service_mounts(settings) if m["Target"] in targets]
        self.emit(25, "Preparing your files")
        spec = ownership.prep_service_spec(
            settings.image, to_prepare, owner, mounts, self.object_labels(labels.KIND_VOLUME_PREP),
            thaw(settings.service.placement),
        )
        prep_id = (await self.docker.call("create_service", **spec))["ID"]
        try:
            try:
                task = await self.wait_for_task(prep_id, until="complete", report=False)
            except SpawnError as e:
                raise SpawnError("Could not prepare your files: %s%s" % (e, await self._prep_logs(prep_id))) from None
        finally:
            await self.remove_service(prep_id)
        return task["NodeID"]

    async def _prep_logs(self, service_id):
        """The prep task's last lines (its reason), or "" when the node has none to give."""
        def read():
            return b"".join(self.docker.client.service_logs(service_id, stdout=True, stderr=True, tail=10))
        try:
            text = (await self.docker.run(read)).decode("utf-8", "replace").strip()
        except (docker.errors.APIError, OSError):
            return ""
        return " (%s)" % text if text else ""

    @staticmethod
    def pinned_to(settings, node_id):
        """``settings`` with the service constrained to node ``node_id``."""
        placement = thaw(settings.service.placement)
        placement["Constraints"] = list(placement.get("Constraints") or []) + ["node.id==%s" % node_id]
        return settings.replace(service=dataclasses.replace(settings.service, placement=freeze(placement)))

    async def poll(self):
        """From the hub's shared view (no request of its own) while the server runs; the
        engine is asked only when the view cannot tell: a service it has not listed, or
        a task that ended or whose node is down (``task_in_doubt``), for its exit code
        or its node's name."""
        view = self.view
        view.start()
        if self._starting:
            return None
        if not self.service_id:
            return 0
        found = await view.service(self.service_id)
        if found is None:
            return await self.poll_engine()
        task = self.newest(found[1])
        if task is None:
            return None  # listed before its task was
        if task_in_doubt(task):
            return await self.poll_engine()
        self.watch_server()  # a server found again after a hub restart
        return None

    async def poll_engine(self):
        """poll() from the engine itself: the service's tasks, and its task's node."""
        try:
            task = self.newest(await self.tasks())
        except docker.errors.NotFound:
            return 0
        if task is None:
            # The service exists but has no task yet (or the service is gone).
            try:
                await self.docker.call("inspect_service", self.service_id)
            except docker.errors.NotFound:
                return 0
            return None
        state = task.get("Status", {}).get("State")
        if state in TASK_ACTIVE:
            hostname = lost_node(task, await self.task_node(task))
            if hostname is None:
                return None
            self.lost_on_node = hostname
            self.stopped_reason = lost_node_reason(hostname, bool(self.volume_driver))
            self.log.warning("Server %s lost with node %s", self._log_name, hostname)
            return 1
        exit_code = task.get("Status", {}).get("ContainerStatus", {}).get("ExitCode")
        return exit_code if exit_code is not None else 0

    # --- a server that stops by itself (told by the view at its listing) -------------

    @property
    def watched_object(self):
        return self.service_id

    async def _notice_death(self, object_id):
        """The view saw this server's service gone or its task in doubt: poll (from the
        engine) and tell the hub when it stopped, or watch on when it still runs."""
        if await self.poll_and_notify() is None:
            self.watch_server()

    async def stop(self, now=False):
        self.unwatch_server()
        ids = [self.service_id] if self.service_id else []
        try:
            ids += [s["ID"] for s in await self.find_services() if s["ID"] not in ids]
        except docker.errors.APIError as e:
            self.log.warning("Listing services of %s failed: %s", self._log_name, _docker_message(e))
        for service_id in ids:
            await self.remove_service(service_id)
        self.service_id = ""
