"""DockerSpawner: one container per user server, configured like dockerspawner 14.

An existing ``c.DockerSpawner.*`` configuration works after changing only
``c.JupyterHub.spawner_class``. Differences are additions (hardening, progress,
fast failures, a shared view for ``poll``) and safer defaults, each documented on
its trait.
"""

import asyncio
import contextlib
import functools
import html
import warnings

import docker.errors
from jupyterhub.spawner import Spawner
from jupyterhub.traitlets import ByteSpecification
from jupyterhub.utils import maybe_future, url_path_join
from traitlets import (
    Any,
    Bool,
    CaselessStrEnum,
    Callable,
    Dict,
    Float,
    Int,
    List,
    TraitError,
    Unicode,
    Union,
    default,
    observe,
    validate,
)

from . import home, labels, naming, ownership, profiles, usage
from .docker_api import DEFAULT_CONCURRENCY, DockerAPI
from .errors import SpawnError, stopped_reason
from .gpus import GPUAssigner, GPUShortage, held_gpus
from .reflector import ContainerState, ContainerView
from .runtime import Runtime
from .specs import ROOT_USERS, Limits, ServerSettings, container_create_args, limits_environment, thaw
from .volumes import plan_group_volumes, plan_volumes, render_nested, render_source

DEFAULT_IMAGE = "hubfleet/singleuser:latest"
LOG_LINES_ON_FAILURE = 20

# Deprecated dockerspawner names → current names (dockerspawner's own table).
DEPRECATED_ALIASES = {
    "container_ip": "host_ip",
    "container_port": "port",
    "container_image": "image",
    "container_prefix": "prefix",
    "container_name_template": "name_template",
    "remove_containers": "remove",
    "image_whitelist": "allowed_images",
}


def _docker_message(error):
    """The engine's own explanation from a docker SDK error."""
    explanation = getattr(error, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return explanation or str(error)


async def answers_http(ip, port, path, timeout=2):
    """Whether an HTTP server at ip:port answers ``GET path`` with a status below 500.

    This is the hub's own readiness rule. A TCP connect alone is not enough: Docker's
    port proxy accepts connections before the server inside the container listens.
    """
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
        request = "GET %s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n\r\n" % (path, ip, port)
        writer.write(request.encode("latin-1"))
        status_line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False
    return int(parts[1]) < 500


async def accepts_connections(ip, port, timeout=2):
    """Whether a TCP connection to ip:port succeeds now."""
    try:
        connection = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    connection[1].close()
    return True


class ContainerRuntime(Runtime):
    """A user server as one container on the hub's engine (DockerSpawner, SystemUserSpawner)."""

    noun = "container"
    create_progress = 40

    @contextlib.asynccontextmanager
    async def assigned_devices(self, settings):
        """Give the server ``settings.gpus`` of the host's GPUs that no other server holds."""
        if not settings.gpus:
            yield settings
            return
        spawner = self.spawner
        states = await spawner.view.all()
        assigner = GPUAssigner.of(spawner.view)
        # A kept container of this server (remove=False) is reused only with the same GPUs.
        prefer = [d for s in states if s.name == settings.name for d in held_gpus(s.labels)]
        try:
            ids = assigner.assign(states, settings.name, spawner.gpu_devices, settings.gpus, prefer)
        except GPUShortage as e:
            raise SpawnError(str(e), reason="gpus") from None
        spawner.emit(8, "Assigned GPU%s %s of this host" % ("" if len(ids) == 1 else "s", ", ".join(ids)))
        try:
            yield settings.with_gpus(ids)
        finally:
            assigner.release(settings.name)

    async def replace_stale(self, settings):
        spawner = self.spawner
        for stale in await spawner.find_containers():
            # A container from an earlier run (remove=False, or a crash mid-spawn), or one
            # holding other GPUs than this run was given.
            if (
                spawner.remove
                or stale["Id"] != spawner.container_id
                or stale.get("Image") != settings.image
                or held_gpus(stale.get("Labels")) != settings.gpu_ids
            ):
                await spawner.remove_container(stale["Id"])
        existing = spawner.container_id if not spawner.remove else ""
        if existing and not await spawner.view.get(existing):
            existing = ""
        return existing

    async def reuse(self, container_id):
        self.spawner.view.claim(container_id)
        await self.spawner.reuse_api_token(container_id)

    async def create(self, settings):
        spawner = self.spawner
        spawner.container_id = await spawner.create_container(settings)
        spawner.view.claim(spawner.container_id)
        return spawner.container_id

    def boot_slot(self):
        return self.spawner.boot_slot()

    async def run(self, settings, container_id):
        spawner = self.spawner
        spawner.emit(60, "Starting the container")
        await spawner.docker.call("start", container_id)
        info = await spawner.docker.call("inspect_container", container_id)
        if not info["State"].get("Running"):
            raise await spawner.exited_error(container_id, info["State"].get("ExitCode"))
        spawner.view.note(ContainerState(container_id, settings.name, "running", labels=thaw(settings.labels)))
        return info

    async def address(self, settings, info):
        return await self.spawner.connection_info(info)

    async def check_alive(self, container_id):
        state = await self.spawner.view.get(container_id)
        if state is None:
            raise SpawnError("The container %s vanished while starting." % self.spawner.container_name)
        if not state.running:
            raise await self.spawner.exited_error(container_id, state.exit_code)

    async def after_start(self, settings, container_id):
        await self.spawner.run_post_start_cmd()


class DockerSpawner(Spawner):
    """Spawn each user server as a hardened Docker container."""

    #: How the server runs: the steps of the spawn sequence (runtime.py).
    runtime_class = ContainerRuntime

    # --- connection --------------------------------------------------------------

    client_kwargs = Dict(
        help="Extra keyword arguments for docker.APIClient (base_url, timeout, …), "
        "applied over DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH from the environment.",
    ).tag(config=True)

    tls_config = Dict(
        help="Keyword arguments for docker.tls.TLSConfig, for an engine reached over TLS.",
    ).tag(config=True)

    docker_api = Any(
        None,
        allow_none=True,
        help="""The Docker client every Docker call of this spawner goes through. Default
        (None): the hub's shared DockerAPI for client_kwargs, tls_config and
        docker_concurrency (one per engine). Any object with DockerAPI's interface will
        do (async `call(method, *args, **kwargs)` and `run(func, *args)`, the blocking
        docker.APIClient as `client` for pulls and the events stream, `engine_cpus()`,
        `boot_slots(size)`): tests pass a fake, e.g. `DockerSpawner(docker_api=engine)`.
        The spawners' shared views are per client: give every spawner of a hub the same one.""",
    ).tag(config=True)

    docker_concurrency = Int(
        DEFAULT_CONCURRENCY,
        help="How many Docker API calls may run at once for the whole hub. A slow pull "
        "takes one slot; the others keep serving spawns, stops and polls.",
    ).tag(config=True)

    boot_concurrency = Int(
        -1,
        help="""How many user servers may boot at once on the Docker host, from the
        container's start until the server answers. Others wait their turn (the spawn
        page says so), so when a class logs in together the first servers are ready in
        seconds instead of every server sharing the CPU until all are ready at the end;
        the last is ready no later. -1 (default): twice the Docker host's CPU count;
        0: no limit. (SwarmSpawner does not use it: the swarm spreads servers over its
        nodes.)""",
    ).tag(config=True)

    boot_slot_timeout = Float(
        15,
        help="Seconds a booting server holds its turn at most: a server slower than that "
        "boots on while the next one starts.",
    ).tag(config=True)

    # --- image -------------------------------------------------------------------

    image = Unicode(
        DEFAULT_IMAGE,
        help="The image of user containers when the user does not choose one "
        "(or when allowed_images is empty).",
    ).tag(config=True)

    allowed_images = Union(
        [Dict(), List(), Callable()],
        help="""Images users may choose, by the `image` user option.

        A dict maps a label shown in the form to an image, a list offers the images
        themselves, a callable (spawner) -> dict or list (may be async) decides per
        user. Empty: users cannot choose, and asking for any image is refused with
        HTTP 400. With more than one entry the default options form offers a select.
        """,
    ).tag(config=True)

    profiles = List(
        Dict(),
        help="""Server profiles users choose from, in the spawn form or by the `profile` user option.

        Each is a dict with `name` and `image`, and optionally `description`,
        `mem_limit`, `cpu_limit`, `mem_guarantee`, `cpu_guarantee` (override the
        spawner's), `gpus` (GPUs per server, overriding `gpus`), `groups` (only members
        of these JupyterHub groups see and may start the profile; others get HTTP 400), `default` (true on at most one: the profile of
        a spawn that names none) and, for the SwarmSpawner, `constraints` (placement
        constraints added to placement_constraints). A bad entry stops the hub at start,
        naming it. Replaces allowed_images: set one or the other.
        """,
    ).tag(config=True)

    group_limits = Dict(
        help="""Higher limits for members of JupyterHub groups, e.g.
        {"graders": {"mem_limit": "8G", "cpu_limit": 4}}: for each limit (mem_limit,
        cpu_limit, mem_guarantee, cpu_guarantee), a member gets the largest of the
        server's own value (the spawner's or the profile's) and their groups' values.
        (JupyterHub's own Spawner.group_overrides, which sets any option per group, works
        as well; its values are what a profile's limits then replace.)
        """,
    ).tag(config=True)

    @validate("profiles")
    def _validate_profiles(self, proposal):
        profiles.parse_profiles(proposal.value, self._parse_limit)
        return proposal.value

    @validate("group_limits")
    def _validate_group_limits(self, proposal):
        profiles.parse_group_limits(proposal.value, self._parse_limit)
        return proposal.value

    def _parse_limit(self, where, value):
        """A limit as an operator writes it ("2G", 1.5) as a number; TraitError naming ``where``."""
        key = where.rsplit(".", 1)[-1]
        try:
            if key.startswith("mem"):
                return ByteSpecification().validate(self, value)
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        except (TraitError, TypeError, ValueError):
            raise TraitError("%s: %r is not a valid %s." % (where, value, key)) from None

    pull_policy = CaselessStrEnum(
        ["always", "ifnotpresent", "never", "skip"],
        default_value="ifnotpresent",
        help="""When to pull the image: `ifnotpresent` (pull when missing), `always`,
        `never` (fail fast when missing) or `skip` (do not even look).""",
    ).tag(config=True)

    # --- names -------------------------------------------------------------------

    prefix = Unicode(
        naming.DEFAULT_PREFIX,
        help="Prefix of container and volume names (`{prefix}` in templates).",
    ).tag(config=True)

    name_template = Unicode(
        help="""Container name template. Fields: {prefix}, {username}, {servername}
        (escaped), {raw_username}, {raw_servername}, {imagename}. Default:
        `{prefix}-{username}` for default servers, `{prefix}-{username}--{servername}`
        for named servers, so every server gets its own container.""",
    ).tag(config=True)

    escape = Any(
        help="""How user and server names are escaped for Docker names: a
        callable(str) -> str, or one of "hubfleet" (the default: lowercase letters
        and digits stay, everything else is written `_xx`, so names are valid,
        case-distinct and DNS-safe; shortened with a hash past 48 characters),
        "escape" (dockerspawner 14's default, `-xx`) or "legacy" (dockerspawner's
        legacy scheme). The dockerspawner names keep the container and volume
        names of a hub that ran dockerspawner.""",
    ).tag(config=True)

    @default("escape")
    def _escape_default(self):
        return naming.escape

    @validate("escape")
    def _validate_escape(self, proposal):
        value = proposal.value
        if isinstance(value, str):
            if value not in naming.ESCAPE_SCHEMES:
                raise TraitError(
                    "DockerSpawner.escape must be a callable or one of %s, not %r"
                    % (", ".join(sorted(naming.ESCAPE_SCHEMES)), value)
                )
            return naming.ESCAPE_SCHEMES[value]
        if not callable(value):
            raise TraitError("DockerSpawner.escape must be a callable or a scheme name, not %r" % (value,))
        return value

    hub_label = Unicode(
        help="Value of the `hubfleet.hub` label on every object this hub creates, so "
        "several hubs can share one engine. Default: the prefix.",
    ).tag(config=True)

    @default("hub_label")
    def _hub_label_default(self):
        return self.prefix

    # --- volumes -----------------------------------------------------------------

    volumes = Dict(
        help="""Volumes to mount: {host path or volume name: guest path} or
        {source: {"bind": guest path, "mode": "ro"}}. Keys and values may use the name
        fields, e.g. {"jupyter-user-{username}": "/home/jovyan/work"}; guest paths also
        {home}, the server user's home in the image (e.g. {"{prefix}-home-{username}":
        "{home}"} keeps the whole home). Named volumes are created labelled for the user
        (and server, when the name uses {servername}); host paths may not leave their
        base directory.""",
    ).tag(config=True)

    existing_volumes = Dict(
        help="""Like `volumes`, but each named volume is mounted only when it exists
        already, and never created: the volumes of an earlier layout, e.g.
        {"{prefix}-user-{username}": "{home}/work"} after a hub that kept only
        /home/jovyan/work moved to keeping the whole home. Users who have one find
        their files where they were; new users get none.""",
    ).tag(config=True)

    @validate("existing_volumes")
    def _existing_volumes_are_named(self, proposal):
        for source in proposal.value:
            if str(source).startswith("/"):
                raise TraitError(
                    "DockerSpawner.existing_volumes: %r is a host path; only named volumes can be mounted "
                    "when they exist (use `volumes` for host paths)." % source
                )
        return proposal.value

    group_volumes = Dict(
        help="""Volumes of each JupyterHub group the user is a member of: {volume name
        template: guest path template}, with the name fields plus {groupname} (the
        group's name, escaped as user names are), e.g. {"{prefix}-group-{groupname}":
        "{home}/groups/{groupname}"}. Mounted read-write for the group's members only:
        others do not see it. Created labelled for the group (hubfleet.kind=group-volume,
        hubfleet.group), never for a user, so no user's deletion removes it; its root is
        made writable for every member at creation (mode 0777), whatever uid each
        member's image runs as.""",
    ).tag(config=True)

    default_home = Unicode(
        "/home/jovyan",
        help="""The {home} of mount targets when the spawner cannot look into the image
        (the SwarmSpawner, whose nodes pull images for themselves). Otherwise {home} is
        the image's: for root_start images /home/$NB_USER, else HOME from `environment`
        or the image, else the home of the server's user in the image's /etc/passwd.""",
    ).tag(config=True)

    read_only_volumes = Dict(
        help="Like `volumes`, always mounted read-only.",
    ).tag(config=True)

    mounts = List(
        Dict(),
        help="Docker mounts ({type, source, target, read_only, …}); strings may use the name fields.",
    ).tag(config=True)

    format_volume_name = Any(
        None,
        allow_none=True,
        help="Callable(template, spawner) -> str rendering volume names (as in dockerspawner), "
        "for names that templates cannot express. Its result is still validated.",
    ).tag(config=True)

    remove_volumes_on_delete = Bool(
        False,
        help="""When a user or named server is deleted from the hub, remove the
        volumes created for it (named volumes labelled for that user and server).
        Off by default: deleting an account never deletes its files unless you ask.""",
    ).tag(config=True)

    # --- networking --------------------------------------------------------------

    network_name = Unicode(
        "bridge",
        help="Docker network of user containers. It must exist; a missing network fails the spawn at once.",
    ).tag(config=True)

    use_internal_ip = Bool(
        False,
        help="Reach the server at the container's IP on `network_name` instead of a port published on `host_ip`.",
    ).tag(config=True)

    use_internal_hostname = Bool(
        False,
        help="Reach the server by the container's name (DNS on a user-defined network).",
    ).tag(config=True)

    host_ip = Unicode(
        "127.0.0.1",
        help="Host address the server's port is published on, when not using the internal IP or hostname.",
    ).tag(config=True)

    links = Dict(
        help="Legacy container links {name: alias}.",
    ).tag(config=True)

    @default("port")
    def _port_default(self):
        return 8888

    @default("ip")
    def _ip_default(self):
        return "0.0.0.0"

    @default("cmd")
    def _cmd_default(self):
        # As in dockerspawner: no command of our own means the image's CMD
        # (with the spawner's arguments appended), so each image starts its own way.
        return None

    # --- container ---------------------------------------------------------------

    extra_create_kwargs = Union(
        [Dict(), Callable()],
        help="Extra arguments for create_container (dict, or callable(spawner) -> dict, may be async). "
        "Strings may use the name fields.",
    ).tag(config=True)

    extra_host_config = Union(
        [Dict(), Callable()],
        help="Extra host_config arguments (dict, or callable(spawner) -> dict, may be async); "
        "they override Hubfleet's defaults. Strings may use the name fields.",
    ).tag(config=True)

    mem_limit = Union(
        [Callable(), ByteSpecification()],
        allow_none=True,
        default_value=None,
        help="Memory limit, e.g. '2G', or callable(spawner) -> value (may be async).",
    ).tag(config=True)

    cpu_limit = Union(
        [Callable(), Float()],
        allow_none=True,
        default_value=None,
        help="CPU limit in cores, e.g. 1.5, or callable(spawner) -> value (may be async).",
    ).tag(config=True)

    mem_guarantee = Union(
        [Callable(), ByteSpecification()],
        allow_none=True,
        default_value=None,
        help="Memory reservation (a soft limit on a single engine), or a callable.",
    ).tag(config=True)

    cpu_guarantee = Union(
        [Callable(), Float()],
        allow_none=True,
        default_value=None,
        help="CPU guarantee in cores (relative CPU shares on a single engine), or a callable.",
    ).tag(config=True)

    gpus = Union(
        [Int(), Callable()],
        default_value=0,
        help="""How many GPUs each server gets, or callable(spawner) -> int (may be async),
        so a profile or group can ask for them. On one host each server gets that many of
        `gpu_devices` that no other running server holds (a spawn fails, naming the
        shortage, when too few are free); on a swarm the service reserves that many of
        its node's `gpu_resource_kind` generic resources.""",
    ).tag(config=True)

    gpu_devices = List(
        Unicode(),
        help="""The host's GPUs that user servers may be given, as the NVIDIA runtime
        names them: indexes ("0", "1") or UUIDs ("GPU-…"). Each goes to one server at a
        time, passed as a device request of the `nvidia` driver; the Docker API filter
        must allow the same ids (its `gpus`; the role's jupyterhub_gpu_devices). Needs the NVIDIA
        Container Toolkit on the Docker host.""",
    ).tag(config=True)

    pids_limit = Int(
        1024,
        help="Most processes a user container may run (fork bombs stop here). 0 or -1: no limit.",
    ).tag(config=True)

    allow_root = Bool(
        False,
        help="""Let containers run as root. Off: an image whose user is root runs as
        `default_user` instead, with every capability dropped. An explicit
        `extra_create_kwargs["user"]` of root needs this on.""",
    ).tag(config=True)

    root_start = Bool(
        False,
        help="""For images that start as root and switch to the notebook user
        themselves, as docker-stacks images do (`NB_UID`, `NB_GID`, `NB_USER`,
        `CHOWN_HOME`). The container starts as root with every capability dropped
        except SETUID and SETGID (to switch user) and CHOWN (for `CHOWN_HOME`), and
        keeps no-new-privileges; the entrypoint must drop to `NB_UID` before it runs
        the server, whose process then has no capability left. Volumes are prepared
        for `NB_UID`:`NB_GID` (from `environment`, else the image's, else 1000:100).
        Not needed for images with a non-root `USER`.""",
    ).tag(config=True)

    prepare_volumes = Bool(
        True,
        help="""Make every writable mount writable by the server's user at its first
        spawn, whatever the image: a named volume created for this spawn has its root
        chowned to the server's uid:gid (after Docker copied the image's files into
        it), a writable host bind or a foreign volume only when its root is empty.
        Runs a short-lived container of the user's image with only CAP_CHOWN,
        CAP_DAC_OVERRIDE and CAP_FOWNER and no network; never recursive.""",
    ).tag(config=True)

    default_user = Unicode(
        "1000:100",
        help="uid:gid for images whose own user is root, when allow_root is off.",
    ).tag(config=True)

    remove = Bool(
        True,
        help="""Remove the container when the server stops (files live in volumes).
        dockerspawner defaults to False; removing means every start applies the
        current image, limits and settings.""",
    ).tag(config=True)

    stop_timeout = Int(
        5,
        help="""Seconds a server has to shut down after its stop signal (SIGTERM) before it
        is killed. What a Jupyter server does on SIGTERM that a user could miss (telling
        kernels to shut down, extensions' clean-up) takes well under a second; what takes
        longer is the interpreter freeing its memory before it exits, about 0.6 CPU-s a
        server, which is what a class stopping at once on a small host waits for. Docker's
        default is 10.""",
    ).tag(config=True)

    post_start_cmd = Union(
        [Unicode(), List(Unicode())],
        default_value="",
        help="Command executed in the container after it starts (string run by /bin/sh -c, or a list).",
    ).tag(config=True)

    container_view_resync_interval = Float(
        60.0,
        help="Seconds between full listings of this hub's containers; between them the "
        "view follows Docker events, so poll() asks the engine nothing.",
    ).tag(config=True)

    volume_size_limit = ByteSpecification(
        None,
        allow_none=True,
        help="Storage each user may use in all their volumes (bytes, or with a unit: 5G, "
        "500M). Not enforced (local volumes have no block quota on overlay2): a user over it "
        "is told on the spawn page, on the hub's pages and in the server (the environment "
        "variable HUBFLEET_STORAGE_NOTICE), and the hub logs a warning. Sizes come from "
        "usage_report; None: no limit.",
    ).tag(config=True)

    usage_report = Unicode(
        "",
        help="Path (in the hub) of the usage report that playbooks/usage.yml writes: JSON "
        '{"measured": ..., "users": {name: bytes}}. Read only when it changes; no sizes '
        "are measured at spawn. Empty: no report, no notice.",
    ).tag(config=True)

    orphan_grace_period = Float(
        120.0,
        help="Seconds after the hub starts before it stops running user containers that no "
        "server in its database owns (left by spawns cut short when the hub was killed). "
        "They are stopped, not removed; the user's next start replaces them. 0: never.",
    ).tag(config=True)

    # --- state -------------------------------------------------------------------

    container_id = Unicode("")
    container_name = Unicode("")

    # --- deprecated dockerspawner names ------------------------------------------

    # Any(None) so that every configured value, even one equal to a default, is mapped.
    container_ip = Any(None, allow_none=True, help="Deprecated: use host_ip.").tag(config=True)
    container_port = Any(None, allow_none=True, help="Deprecated: use port.").tag(config=True)
    container_image = Any(None, allow_none=True, help="Deprecated: use image.").tag(config=True)
    container_prefix = Any(None, allow_none=True, help="Deprecated: use prefix.").tag(config=True)
    container_name_template = Any(None, allow_none=True, help="Deprecated: use name_template.").tag(config=True)
    remove_containers = Any(None, allow_none=True, help="Deprecated: use remove.").tag(config=True)
    image_whitelist = Any(None, allow_none=True, help="Deprecated: use allowed_images.").tag(config=True)

    @observe(*DEPRECATED_ALIASES)
    def _deprecated_alias(self, change):
        new = DEPRECATED_ALIASES[change.name]
        message = "%s.%s is deprecated; use %s.%s" % (type(self).__name__, change.name, type(self).__name__, new)
        self.log.warning(message)
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        setattr(self, new, change.new)

    # --- life cycle --------------------------------------------------------------

    #: Whether this class places servers on nodes (honours a profile's `constraints`).
    places_servers = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        if self.profiles and self.allowed_images:
            raise TraitError("%s.profiles and %s.allowed_images are both set: profiles replace allowed_images; keep one." % (name, name))
        if not self.places_servers:
            for profile in profiles.parse_profiles(self.profiles, self._parse_limit):
                if profile.constraints:
                    raise TraitError(
                        "%s.profiles (%s): constraints place servers on swarm nodes; %s runs them on one host."
                        " Use the SwarmSpawner, or remove them." % (name, profile.name, name)
                    )
        self._events = []
        self._events_changed = asyncio.Event()
        self._starting = False
        self._watched = ""
        # Why the server last stopped by itself, for the "not running" page (shown by
        # hubfleet_spawner's not_running.html template); cleared by the next start.
        self.stopped_reason = ""

    @property
    def docker(self):
        """The Docker client (docker_api), by default the hub's shared one (one per engine and settings)."""
        if self.docker_api is not None:
            return self.docker_api
        return DockerAPI.shared(self.client_kwargs, self.tls_config, self.docker_concurrency)

    @property
    def view(self):
        view = ContainerView.shared(self.docker, self.hub_label, self.log, self.container_view_resync_interval)
        view.reap_orphans(self.orphan_grace_period, self._stop_orphan)
        return view

    async def _stop_orphan(self, container_id):
        await self.docker.call("stop", container_id, timeout=self.stop_timeout)

    def template_names(self, image=""):
        """The fields name templates see for this user and server."""
        return naming.template_names(
            self.user.name,
            self.name or "",
            prefix=self.prefix,
            imagename=image or self.image,
            escape=self.escape,
        )

    @property
    def object_name(self):
        """The container (or service) name of this user server."""
        template = self.name_template or (
            naming.DEFAULT_NAMED_SERVER_NAME_TEMPLATE if self.name else naming.DEFAULT_NAME_TEMPLATE
        )
        return naming.container_name(template, self.template_names())

    def object_labels(self, kind=labels.KIND_USER_SERVER, server=None):
        return labels.object_labels(
            self.hub_label,
            kind,
            user=self.user.name,
            server=self.name if server is None else server,
        )

    def load_state(self, state):
        super().load_state(state)
        self.container_id = state.get("container_id", "")
        self.container_name = state.get("container_name", "")
        self.stopped_reason = state.get("stopped_reason", "")

    def get_state(self):
        state = super().get_state()
        if self.container_id:
            state["container_id"] = self.container_id
            state["container_name"] = self.container_name
        if self.stopped_reason:
            state["stopped_reason"] = self.stopped_reason
        return state

    def clear_state(self):
        super().clear_state()
        if self.remove:
            self.container_id = ""
            self.container_name = ""

    # --- progress ----------------------------------------------------------------

    def emit(self, progress, message):
        """Record a progress event for the spawn page."""
        self._events.append({"progress": int(progress), "message": message})
        self._events_changed.set()

    async def progress(self):
        """Yield the events of the current spawn as they happen."""
        sent = 0
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            if not self._starting:
                return
            self._events_changed.clear()
            try:
                await asyncio.wait_for(self._events_changed.wait(), timeout=1)
            except asyncio.TimeoutError:
                pass

    # --- resolving configuration ---------------------------------------------------

    async def _resolve(self, value):
        """A trait value, or the result of calling it with the spawner (awaited if async)."""
        if callable(value):
            value = await maybe_future(value(self))
        return value

    def storage_notice(self):
        """The notice for this user when the usage report has them over volume_size_limit
        (said on the spawn page and logged for the admins), else ""."""
        if not (self.usage_report and self.volume_size_limit):
            return ""
        notice = usage.UsageReport.shared(self.usage_report, self.log).notice(self.user.name, self.volume_size_limit)
        if notice:
            self.emit(30, notice)
            self.log.warning("%s is over the storage limit: %s", self.user.name, notice)
        return notice

    async def allowed_image_choices(self):
        """The images this user may choose, as {label: image}."""
        allowed = await self._resolve(self.allowed_images)
        if isinstance(allowed, dict):
            return dict(allowed)
        return {image: image for image in allowed or []}

    def user_group_names(self):
        """The names of the JupyterHub groups this server's user is in."""
        return [group.name for group in getattr(self.user, "groups", None) or []]

    def chosen_profile(self):
        """The profile of this spawn (None without profiles); SpawnError (HTTP 400) for
        one the user may not start."""
        if not self.profiles:
            return None
        configured = profiles.parse_profiles(self.profiles, self._parse_limit)
        try:
            return profiles.choose_profile(configured, self.user_options, self.user_group_names())
        except profiles.ProfileRefused as e:
            raise SpawnError(str(e), reason="profile", status_code=400) from None

    @default("options_form")
    def _options_form_default(self):
        return self._image_options_form

    async def _image_options_form(self, spawner):
        if self.profiles:
            configured = profiles.parse_profiles(self.profiles, self._parse_limit)
            return profiles.options_form(profiles.visible_profiles(configured, self.user_group_names()))
        choices = await self.allowed_image_choices()
        if len(choices) <= 1:
            return ""
        options = "\n".join(
            '<option value="%s">%s</option>' % (html.escape(label, quote=True), html.escape(label))
            for label in choices
        )
        return (
            '<label for="image">Image</label>\n'
            '<select class="form-control" name="image" id="image" required autofocus>\n%s\n</select>' % options
        )

    async def resolve_image(self):
        """The image for this spawn: the chosen profile's, else the user's validated
        choice, else `image`.

        Raises SpawnError (HTTP 400) for a profile the user may not start, or a choice
        outside allowed_images.
        """
        profile = self.chosen_profile()
        if profile is not None:
            return profile.image
        requested = (self.user_options or {}).get("image")
        if isinstance(requested, list):
            requested = requested[0] if requested else None
        if not requested:
            return self.image
        choices = await self.allowed_image_choices()
        if not isinstance(requested, str) or not choices:
            self._refuse("This hub does not let users choose an image.")
        if requested in choices:
            return choices[requested]
        if requested in choices.values():
            return requested
        self._refuse(
            "Image %r is not allowed. Choose one of: %s." % (str(requested)[:200], ", ".join(sorted(choices)))
        )

    def _refuse(self, message):
        raise SpawnError(message, reason="image", status_code=400)

    async def resolved_gpus(self):
        """How many GPUs this spawn asks for: the chosen profile's, else ``gpus`` (a
        callable evaluated)."""
        profile = self.chosen_profile()
        count = profile.gpus if profile is not None and profile.gpus is not None else await self._resolve(self.gpus)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise SpawnError("DockerSpawner.gpus must be a whole number of GPUs, not %r." % (count,))
        return count

    async def resolved_limits(self):
        """The limits of this spawn, callables evaluated (a ``Limits``)."""
        limits = {}
        for name in ("mem_limit", "cpu_limit", "mem_guarantee", "cpu_guarantee"):
            value = await self._resolve(getattr(self, name))
            if isinstance(value, str):
                value = ByteSpecification().validate(self, value) if name.startswith("mem") else float(value)
            limits[name] = value
        if self.profiles or self.group_limits:
            overrides = profiles.parse_group_limits(self.group_limits, self._parse_limit)
            limits = profiles.profile_limits(self.chosen_profile(), limits, overrides, self.user_group_names())
        return Limits(pids_limit=self.pids_limit, **limits)

    # --- Docker steps ----------------------------------------------------------------

    async def check_network(self):
        """Fail fast when the configured network does not exist."""
        network = self.network_name
        if network in ("bridge", "host", "none", "default") or network.startswith("container:"):
            return
        try:
            await self.docker.call("inspect_network", network)
        except docker.errors.NotFound:
            raise SpawnError(
                "The Docker network %r (DockerSpawner.network_name) does not exist on the Docker host. "
                "Ask an administrator to create it." % network
            )

    async def ensure_image(self, image):
        """Apply pull_policy; returns the image's inspect data (None with `skip`)."""
        policy = self.pull_policy.lower()
        if policy == "skip":
            return None
        present = None
        if policy != "always":
            try:
                present = await self.docker.call("inspect_image", image)
            except docker.errors.ImageNotFound:
                present = None
        if present is not None:
            return present
        if policy == "never":
            raise SpawnError(
                "Image %r is not present on the Docker host, and pull_policy is 'never'. "
                "Ask an administrator to build or load it." % image
            )
        await self.pull_image(image)
        return await self.docker.call("inspect_image", image)

    async def pull_image(self, image):
        """Pull ``image``, reporting percent done from the pull stream."""
        self.emit(10, "Pulling image %s" % image)
        loop = asyncio.get_running_loop()

        def pull():
            layers = {}
            last_percent = -1
            # The SDK splits the reference (tag or digest) itself.
            for item in self.docker.client.pull(image, stream=True, decode=True):
                if "error" in item:
                    raise SpawnError("Pulling image %r failed: %s" % (image, item["error"]))
                detail = item.get("progressDetail") or {}
                if item.get("id") and detail.get("total"):
                    layers[item["id"]] = (detail.get("current", 0), detail["total"])
                if layers:
                    done = sum(layer[0] for layer in layers.values())
                    total = sum(layer[1] for layer in layers.values())
                    percent = int(100 * done / total) if total else 0
                    if percent != last_percent:
                        last_percent = percent
                        loop.call_soon_threadsafe(
                            self.emit, 10 + percent * 0.3, "Pulling image %s: %d%%" % (image, percent)
                        )

        try:
            await self.docker.run(pull)
        except docker.errors.APIError as e:
            raise SpawnError("Pulling image %r failed: %s" % (image, _docker_message(e)))

    async def find_containers(self):
        """All containers labelled for this user server (any state), by label."""
        found = await self.docker.call(
            "containers",
            all=True,
            filters={"label": labels.label_filters(hub=self.hub_label, user=self.user.name)},
        )
        return [c for c in found if labels.matches(c.get("Labels"), server=self.name or "")]

    async def remove_container(self, container_id):
        try:
            await self.docker.call("remove_container", container_id, force=True)
        except docker.errors.NotFound:
            pass
        self.view.forget(container_id)

    def volume_labels(self, templates):
        """Labels of this server's named volumes: server-scoped when a template names the server."""
        server_scoped = any("servername}" in t for t in templates)
        return self.object_labels(labels.KIND_USER_VOLUME, server=self.name if server_scoped else "")

    async def create_volumes(self, settings):
        """Create the named volumes of a plan, labelled for this user (and server).

        Returns (names created now, existing names that were prepared when created).
        """
        created, prepared = [], []
        for name in settings.named_volumes:
            try:
                info = await self.docker.call("inspect_volume", name)
            except docker.errors.NotFound:
                driver = settings.volume_drivers.get(name) or {}
                await self.docker.call(
                    "create_volume",
                    name=name,
                    driver=driver.get("Name"),
                    driver_opts=driver.get("Options") or None,
                    labels=dict(settings.group_volumes.get(name, settings.volume_labels), **{ownership.LABEL_PREPARED: "1"}),
                )
                created.append(name)
            else:
                if ownership.LABEL_PREPARED in (info.get("Labels") or {}):
                    prepared.append(name)
        return created, prepared

    async def prepare_user_files(self, settings, created, prepared):
        """The ownership step: every writable mount new to this spawn becomes the
        server user's (see ownership.py). A volume created for this spawn is removed
        again when that fails, so the next spawn prepares it anew."""
        if not self.prepare_volumes:
            return
        image_info = settings.image_info or {}
        image_ref = image_info.get("Id") or settings.image
        try:
            owner = ownership.owner_spec(
                settings.user,
                root_start=settings.root_start,
                environment=settings.environment_list,
                image_environment=(image_info.get("Config") or {}).get("Env") or [],
            )
            to_prepare = ownership.mounts_to_prepare(settings.volume_plan(), created, prepared, settings.group_volumes)
            if owner is None or not to_prepare:
                return
            self.emit(35, "Preparing your files")
            await ownership.run_prep_container(
                self.docker, image_ref, to_prepare, owner, self.object_labels(labels.KIND_VOLUME_PREP)
            )
        except (ownership.OwnerError, SpawnError, docker.errors.APIError) as e:
            for name in created:
                with contextlib.suppress(docker.errors.APIError):
                    await self.docker.call("remove_volume", name)
            message = _docker_message(e) if isinstance(e, docker.errors.APIError) else str(e)
            raise SpawnError("Could not prepare your files: %s" % message) from None

    async def container_user(self, image_info, extra_create):
        """The user the container runs as (non-root unless allowed); ``extra_create`` is
        the rendered extra_create_kwargs, whose "user" wins."""
        explicit = extra_create.get("user")
        if explicit is not None:
            if str(explicit) in ROOT_USERS and not self.allow_root:
                raise SpawnError(
                    "extra_create_kwargs asks to run as root, but DockerSpawner.allow_root is off."
                )
            return explicit
        if self.root_start:
            return "0"
        image_user = ((image_info or {}).get("Config") or {}).get("User") or ""
        if image_user in ROOT_USERS and not self.allow_root:
            return self.default_user
        return image_user or None

    async def container_command(self, image_info):
        if self.cmd:
            return list(self.cmd) + list(self.get_args())
        args = list(self.get_args())
        if not args:
            return None
        image_cmd = ((image_info or {}).get("Config") or {}).get("Cmd") or []
        return list(image_cmd) + args

    def _volume_name_formatter(self):
        """format_volume_name with dockerspawner's signature (template, spawner), or None."""
        if self.format_volume_name is None:
            return None

        def formatter(template, names):
            return self.format_volume_name(template, self)

        return formatter

    def group_names(self):
        """The names of the JupyterHub groups the user is a member of."""
        if not self.group_volumes:
            return []
        return [group.name for group in getattr(self.user, "groups", None) or []]

    def group_volume_labels(self, group):
        """Labels of a group's volume: the group's, never a user's."""
        return labels.object_labels(
            self.hub_label, labels.KIND_GROUP_VOLUME, extra={labels.LABEL_GROUP: group}
        )

    def mount_targets(self):
        """Every configured mount target template (guest paths)."""
        specs = [
            *self.volumes.values(), *self.read_only_volumes.values(), *self.existing_volumes.values(),
            *self.group_volumes.values(),
        ]
        targets = [spec.get("bind", "") if isinstance(spec, dict) else spec for spec in specs]
        return targets + [m.get("target", m.get("Target", "")) for m in self.mounts]

    async def server_home(self, image_info, user, environment):
        """The {home} of this spawn's mount targets (see home.py); None when no target uses it."""
        if not home.uses_home(self.mount_targets()):
            return None
        image_environment = ((image_info or {}).get("Config") or {}).get("Env") or []
        try:
            found = home.known_home(self.root_start, ["%s=%s" % item for item in environment.items()], image_environment)
            if found:
                return found
            if not image_info:
                return home.check_home(self.default_home, "DockerSpawner.default_home")
            return await home.look_up_home(
                self.docker,
                image_info["Id"],
                user,
                self.object_labels(labels.KIND_VOLUME_PREP),
                ownership.prep_host_config({}, [], capabilities=()),
            )
        except home.HomeError as e:
            raise SpawnError("Could not find your home directory: %s" % e) from None
        except docker.errors.APIError as e:
            raise SpawnError("Could not find your home directory: %s" % _docker_message(e)) from None

    async def present_existing_volumes(self, names):
        """The entries of `existing_volumes` whose volume exists, keyed by their template."""
        present = {}
        for template, spec in self.existing_volumes.items():
            name = render_source(template, names, self._volume_name_formatter())
            try:
                await self.docker.call("inspect_volume", name)
            except docker.errors.NotFound:
                continue
            present[template] = spec
        return present

    async def resolve_settings(self, image, image_info):
        """Resolve this spawn's configuration once (callables called, templates rendered,
        names escaped) into the immutable ``ServerSettings`` every later step reads."""
        names = self.template_names(image)
        extra_create = render_nested(await self._resolve(self.extra_create_kwargs) or {}, names)
        user = await self.container_user(image_info, extra_create)
        limits = await self.resolved_limits()
        environment = limits_environment(self.get_env(), limits)
        notice = self.storage_notice()
        if notice:
            environment = dict(environment, HUBFLEET_STORAGE_NOTICE=notice)
        server_home = await self.server_home(image_info, user, environment)
        if server_home is not None:
            names = dict(names, home=server_home)
        volumes = dict(self.volumes, **await self.present_existing_volumes(names))
        templates = list(volumes) + list(self.read_only_volumes) + [m.get("source", "") for m in self.mounts]
        plan = plan_volumes(volumes, self.read_only_volumes, self.mounts, names, self._volume_name_formatter())
        group_owners = plan_group_volumes(plan, self.group_volumes, self.group_names(), names, self.escape)
        internal = self.use_internal_ip or self.use_internal_hostname
        server_labels = self.object_labels()
        stop_signal = extra_create.get("stop_signal") or ((image_info or {}).get("Config") or {}).get("StopSignal")
        if stop_signal and str(stop_signal) not in ("SIGTERM", "15"):
            server_labels[labels.LABEL_STOP_SIGNAL] = str(stop_signal)
        return ServerSettings.create(
            image=image,
            image_info=image_info,
            name=self.object_name,
            names=names,
            labels=server_labels,
            volume_labels=self.volume_labels(templates),
            binds=plan.binds,
            mounts=plan.mounts,
            named_volumes=plan.named_volumes,
            volume_drivers=plan.volume_drivers,
            group_volumes={name: self.group_volume_labels(group) for name, group in group_owners.items()},
            user=user,
            root_start=self.root_start,
            command=await self.container_command(image_info),
            environment=environment,
            limits=limits,
            network=self.network_name,
            port=self.port,
            publish_on=None if internal else self.host_ip,
            links=self.links,
            extra_create=extra_create,
            extra_host=render_nested(await self._resolve(self.extra_host_config) or {}, names),
            stop_timeout=self.stop_timeout,
            gpus=await self.resolved_gpus(),
        )

    async def create_container(self, settings):
        """Create (not start) the container, after its volumes; returns its id."""
        created, prepared = await self.create_volumes(settings)
        await self.prepare_user_files(settings, created, prepared)
        create = container_create_args(settings)
        client = self.docker.client
        create["host_config"] = client.create_host_config(**create["host_config"])
        if "networking_config" in create:
            create["networking_config"] = client.create_networking_config(
                {name: client.create_endpoint_config(**config) for name, config in create["networking_config"].items()}
            )
        info = await self.docker.call("create_container", **create)
        return info["Id"]

    async def connection_info(self, info):
        """(ip, port) where the hub reaches the server."""
        if self.use_internal_hostname:
            return self.container_name, self.port
        settings = info.get("NetworkSettings") or {}
        if self.use_internal_ip:
            networks = settings.get("Networks") or {}
            network = networks.get(self.network_name) or next(iter(networks.values()), {})
            return network.get("IPAddress"), self.port
        bindings = (settings.get("Ports") or {}).get("%d/tcp" % self.port) or []
        if not bindings:
            raise SpawnError("The container published no port for %d/tcp." % self.port)
        return self.host_ip if self.host_ip not in ("0.0.0.0", "") else "127.0.0.1", int(bindings[0]["HostPort"])

    async def container_logs(self, container_id):
        try:
            raw = await self.docker.call("logs", container_id, tail=LOG_LINES_ON_FAILURE)
        except docker.errors.APIError:
            return ""
        return raw.decode("utf-8", "replace").strip()

    async def exited_error(self, container_id, exit_code):
        """The error for a container that stopped while starting, with its last log lines."""
        logs = await self.container_logs(container_id)
        return SpawnError(
            "The server's container exited with status %s while starting. Last log lines:\n%s"
            % (exit_code, logs or "(no output)")
        )

    async def wait_until_answering(self, ip, port, check_alive):
        """Return once the server answers HTTP as the hub will ask it (``<base_url>api``);
        ``check_alive()`` raises SpawnError as soon as the server is gone, so a dead
        server fails the spawn at once.

        Polling here, quickly, saves the hub's own exponential back-off (up to 5 s a
        try) once the spawn returns. With internal_ssl the check is a TCP connect and
        the hub's HTTPS check does the rest.
        """
        if self.internal_ssl or self.server is None:
            ready = functools.partial(accepts_connections, ip, port)
        else:
            ready = functools.partial(answers_http, ip, port, url_path_join(self.server.base_url, "api"))
        delay = 0.05
        while True:
            await check_alive()
            if await ready():
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.3, 0.25)

    async def run_post_start_cmd(self):
        cmd = self.post_start_cmd
        if not cmd:
            return
        if isinstance(cmd, str):
            cmd = ["/bin/sh", "-c", cmd]
        exec_id = await self.docker.call("exec_create", self.container_id, cmd)
        output = await self.docker.call("exec_start", exec_id)
        result = await self.docker.call("exec_inspect", exec_id)
        if result.get("ExitCode"):
            self.log.warning(
                "post_start_cmd for %s exited %s: %s",
                self._log_name,
                result.get("ExitCode"),
                output.decode("utf-8", "replace")[-2000:],
            )

    async def start(self):
        self._events = []
        self._starting = True
        self.stopped_reason = ""
        try:
            address = await self._start()
            self.watch_server()
            return address
        except docker.errors.APIError as e:
            raise SpawnError("Docker refused to start the server: %s" % _docker_message(e)) from None
        except naming.UnsafeNameError as e:
            raise SpawnError(str(e)) from None
        finally:
            self._starting = False
            self._events_changed.set()

    async def _start(self):
        """The one spawn sequence of every Hubfleet spawner (see runtime.py)."""
        runtime = self.runtime_class(self)
        image = await self.resolve_image()
        self.container_name = self.object_name
        self.emit(5, "Preparing %s" % image)
        runtime.announce()
        await self.check_network()
        image_info = await self.ensure_image(image)
        settings = await self.resolve_settings(image, image_info)
        async with runtime.assigned_devices(settings) as settings:
            return await self._run_server(runtime, settings)

    async def _run_server(self, runtime, settings):
        """The spawn's steps from replacing a stale object to a server that answers."""
        object_id = await runtime.replace_stale(settings)
        if object_id:
            self.emit(40, "Restarting the existing %s" % runtime.noun)
            await runtime.reuse(object_id)
        else:
            self.emit(runtime.create_progress, "Creating the %s" % runtime.noun)
            object_id = await runtime.create(settings)
        async with runtime.boot_slot():
            running = await runtime.run(settings, object_id)
            ip, port = await runtime.address(settings, running)
            self.emit(80, "Waiting for the server to answer")
            await self.wait_until_answering(ip, port, functools.partial(runtime.check_alive, object_id))
        await runtime.after_start(settings, object_id)
        self.emit(95, "Server is up")
        return ip, port

    @contextlib.asynccontextmanager
    async def boot_slot(self):
        """Hold one of the engine's boot slots (boot_concurrency) while the server boots."""
        size = self.boot_concurrency
        if size < 0:
            size = 2 * await self.docker.engine_cpus()
        slots = self.docker.boot_slots(size)
        if slots is None:
            yield
            return
        if slots.full:
            self.emit(55, "Waiting for a turn to boot (%d servers are booting on this host)" % slots.size)
        async with slots.slot(self.boot_slot_timeout):
            yield

    async def reuse_api_token(self, container_id):
        """A kept container (remove=False) still holds its old token: tell the hub."""
        info = await self.docker.call("inspect_container", container_id)
        for item in (info.get("Config") or {}).get("Env") or []:
            if item.startswith("JUPYTERHUB_API_TOKEN=") and len(item) > len("JUPYTERHUB_API_TOKEN="):
                self.api_token = item.split("=", 1)[1]

    async def poll(self):
        # The hub polls every recorded server as it starts: that starts the view (and with
        # it the orphan reaper) even when no recorded server has a container.
        self.view.start()
        if self._starting:
            return None
        if not self.container_id:
            return 0
        state = await self.view.get(self.container_id)
        if state is None:
            return 0
        if state.running:
            self.watch_server()  # a server found again after a hub restart
            return None
        return state.exit_code if state.exit_code is not None else 0

    # --- a server that stops by itself -------------------------------------------

    @property
    def watched_object(self):
        """The id of what the view watches for this server (its container)."""
        return self.container_id

    def watch_server(self):
        """Be told by the shared view the moment this server dies, so the hub stops
        routing to it at once rather than at its next poll (poll_interval)."""
        object_id = self.watched_object
        if object_id and self._watched != object_id:
            self._watched = object_id
            self.view.watch(object_id, self._server_died)

    def unwatch_server(self):
        if self._watched:
            self.view.unwatch(self._watched)
            self._watched = ""

    def _server_died(self, state):
        object_id, self._watched = self._watched, ""
        if object_id and object_id == self.watched_object and not (self._starting or self._stop_pending):
            asyncio.ensure_future(self._notice_death(object_id))

    async def _notice_death(self, object_id):
        """Record why the server stopped, then tell the hub (poll_and_notify: its
        callbacks remove the proxy route and mark the server stopped)."""
        try:
            info = await self.docker.call("inspect_container", object_id)
        except docker.errors.NotFound:
            info = None
        state = (info or {}).get("State") or {}
        if state.get("Running"):
            self.watch_server()  # an event replayed from before a restart: still alive
            return
        if info is None:
            self.stopped_reason = "Your server's container was removed. Saved files on your volumes are kept."
        else:
            memory = ((info.get("HostConfig") or {}).get("Memory")) or 0
            self.stopped_reason = stopped_reason(state, memory, await self.container_logs(object_id))
        self.log.warning("Server %s stopped by itself: %s", self._log_name, self.stopped_reason.splitlines()[0])
        await self.poll_and_notify()

    async def stop(self, now=False):
        self.unwatch_server()
        ids = [self.container_id] if self.container_id else []
        if self.remove:
            # Earlier runs' containers too, read from the view: no listing per stop when a
            # whole class stops at once.
            ids += [
                state.id
                for state in await self.view.all()
                if state.id not in ids and labels.matches(state.labels, user=self.user.name, server=self.name or "")
            ]
        for container_id in ids:
            try:
                await self.stop_container(container_id, 0 if now else self.stop_timeout, remove=self.remove)
            except docker.errors.NotFound:
                self.view.forget(container_id)
        if self.remove:
            self.container_id = ""

    async def stop_container(self, container_id, grace, remove=False):
        """Stop a container as ``docker stop`` does (its stop signal, SIGKILL after
        ``grace`` seconds), but wait for its death on the view, not in a Docker call:
        a whole class stopping at once never waits for a free API slot. With ``remove``
        the container is then removed (a forced removal kills it if it still runs)."""
        view = self.view
        view.start()
        stopped = view.stopped(container_id)
        try:
            state = await view.get(container_id)
            if grace > 0 and state is not None and state.running:
                # One request before the wait: when a class stops at once, every server gets
                # its signal within moments, before the first ones' exits load the host.
                signal = state.labels.get(labels.LABEL_STOP_SIGNAL) or "SIGTERM"
                await self.docker.call("kill", container_id, signal=signal)
                await asyncio.wait_for(asyncio.shield(stopped), grace)
        except asyncio.TimeoutError:
            pass
        except docker.errors.APIError as e:
            if isinstance(e, docker.errors.NotFound):
                raise
            # It stopped between the inspection and the signal (409): the stop below says so.
        finally:
            stopped.cancel()
        if remove:
            await self.remove_container(container_id)
        else:
            # SIGKILL if it still runs; returns once it no longer does (a no-op when it is stopped).
            await self.docker.call("stop", container_id, timeout=0)

    async def delete_forever(self):
        """Remove this server's volumes, only when remove_volumes_on_delete is on."""
        if not self.remove_volumes_on_delete:
            return
        filters = {"label": labels.label_filters(hub=self.hub_label, kind=labels.KIND_USER_VOLUME, user=self.user.name)}
        response = await self.docker.call("volumes", filters=filters)
        for volume in (response or {}).get("Volumes") or []:
            if not labels.matches(volume.get("Labels"), server=self.name or ""):
                continue
            try:
                await self.docker.call("remove_volume", volume["Name"])
                self.log.info("Removed volume %s of deleted server %s", volume["Name"], self._log_name)
            except docker.errors.APIError as e:
                self.log.warning("Keeping volume %s: %s", volume["Name"], _docker_message(e))
