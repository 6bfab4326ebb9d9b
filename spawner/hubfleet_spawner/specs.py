"""What to run: one immutable description of a user server, and the pure builders that
turn it into a container's create arguments or a swarm service's spec.

Every spawner resolves its configuration once per spawn into a ``ServerSettings``
(image, image info, limits, names, network, mounts, user …); the runtime steps read
only that value. ``container_create_args`` and ``service_spec`` build the whole request
from it without asking the engine, so unit tests compare whole dicts. Limits and
hardening are written once (``LIMITS``, ``privileges``) and mapped to each API's names.
"""

import dataclasses
from types import MappingProxyType
from typing import Mapping, Optional, Tuple

from .gpus import LABEL_GPUS, gpu_label
from .ownership import ROOT_START_CAPABILITIES

# Users a container runs as root with (as Docker takes them).
ROOT_USERS = ("", "0", "root", "0:0", "root:root")
# Networks that exist on every engine and take no networking_config.
BUILTIN_NETWORKS = ("bridge", "host", "none", "default")


def freeze(value):
    """A read-only deep copy: dicts become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value):
    """A plain, mutable deep copy of a frozen value (what the Docker SDK takes)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def _empty():
    # Used as the default of fields of the frozen dataclasses below.
    return dataclasses.field(  # pylint: disable=invalid-field-call
        default_factory=lambda: MappingProxyType({}))


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits of one server, callables already evaluated (bytes and cores)."""

    mem_limit: Optional[int] = None
    cpu_limit: Optional[float] = None
    mem_guarantee: Optional[int] = None
    cpu_guarantee: Optional[float] = None
    pids_limit: int = 0

    def environment(self):
        """MEM_LIMIT, CPU_LIMIT, MEM_GUARANTEE, CPU_GUARANTEE as JupyterHub sets them."""
        return {
            key: str(value)
            for key, value in (
                ("MEM_LIMIT", self.mem_limit),
                ("CPU_LIMIT", self.cpu_limit),
                ("MEM_GUARANTEE", self.mem_guarantee),
                ("CPU_GUARANTEE", self.cpu_guarantee),
            )
            if value
        }


LIMIT_ENVIRONMENT = ("MEM_LIMIT", "CPU_LIMIT", "MEM_GUARANTEE", "CPU_GUARANTEE")


def _nanos(cores):
    return int(float(cores) * 1e9)


def _shares(cores):
    # A single engine has no CPU reservation: relative shares (1024 = one core's weight).
    return max(2, int(float(cores) * 1024))


# Each limit once: (Limits field, host_config key, converter, service Resources section, key, converter).
LIMITS = (
    ("mem_limit", "mem_limit", int, "Limits", "MemoryBytes", int),
    ("cpu_limit", "nano_cpus", _nanos, "Limits", "NanoCPUs", _nanos),
    ("pids_limit", "pids_limit", int, "Limits", "Pids", int),
    ("mem_guarantee", "mem_reservation", int, "Reservations", "MemoryBytes", int),
    ("cpu_guarantee", "cpu_shares", _shares, "Reservations", "NanoCPUs", _nanos),
)


@dataclasses.dataclass(frozen=True)
class ServiceOptions:
    """What only a swarm service needs, resolved (placement asks the engine for nodes)."""

    placement: Mapping = _empty()
    endpoint_mode: str = "dnsrr"
    volume_driver: Optional[Mapping] = None  # {"Name", "Options"} for named volumes
    extra_container_spec: Mapping = _empty()
    extra_resources_spec: Mapping = _empty()
    extra_task_spec: Mapping = _empty()
    extra_endpoint_spec: Mapping = _empty()
    gpu_resource_kind: str = "NVIDIA-GPU"  # the generic resource nodes advertise their GPUs as

    @classmethod
    def create(cls, **fields):
        return cls(**{k: freeze(v) for k, v in fields.items()})


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Everything one spawn runs with, resolved once before any object is created.

    Build it with ``ServerSettings.create(...)`` (which freezes nested values); derive a
    changed copy with ``dataclasses.replace``.
    """

    image: str
    name: str
    labels: Mapping
    image_info: Optional[Mapping] = None
    names: Mapping = _empty()
    volume_labels: Mapping = _empty()
    binds: Mapping = _empty()  # {source: {"bind": target, "mode": "rw"|"ro"}}
    mounts: Tuple = ()  # Engine API Mount dicts
    named_volumes: Tuple = ()
    volume_drivers: Mapping = _empty()
    group_volumes: Mapping = _empty()  # {volume name: its labels} of the user's groups' volumes
    user: Optional[str] = None
    root_start: bool = False
    command: Optional[Tuple] = None
    environment: Mapping = _empty()
    limits: Limits = Limits()
    network: str = "bridge"
    port: int = 8888
    publish_on: Optional[str] = None  # host address the port is published on; None: not published
    links: Mapping = _empty()
    extra_create: Mapping = _empty()
    extra_host: Mapping = _empty()
    stop_timeout: int = 5
    gpus: int = 0  # how many GPUs the server asks for
    gpu_ids: Tuple = ()  # the host's devices it was given (single engine; see gpus.py)
    service: Optional[ServiceOptions] = None

    @classmethod
    def create(cls, **fields):
        return cls(**{k: freeze(v) for k, v in fields.items()})

    def replace(self, **fields):
        return dataclasses.replace(self, **{k: freeze(v) for k, v in fields.items()})

    def with_gpus(self, device_ids):
        """These settings with ``device_ids`` given to the server, recorded in its labels."""
        labels = dict(self.labels)
        labels.pop(LABEL_GPUS, None)
        if device_ids:
            labels[LABEL_GPUS] = gpu_label(device_ids)
        return self.replace(gpu_ids=tuple(device_ids), labels=labels)

    @property
    def non_root(self):
        return self.user is not None and str(self.user) not in ROOT_USERS

    @property
    def environment_list(self):
        return ["%s=%s" % item for item in self.environment.items()]

    def volume_plan(self):
        """The volumes as a mutable ``VolumePlan`` (for the ownership step)."""
        from .volumes import VolumePlan

        plan = VolumePlan()
        plan.binds = thaw(self.binds)
        plan.mounts = thaw(self.mounts)
        plan.named_volumes = list(self.named_volumes)
        plan.volume_drivers = thaw(self.volume_drivers)
        return plan


def privileges(settings):
    """Hardening every server gets, in neutral terms: no_new_privileges, cap_drop, cap_add.

    Non-root servers lose every capability; root-start images (which switch user in
    their entrypoint) keep only what switching needs; root servers (allow_root) keep
    the engine's defaults.
    """
    hardening = {"no_new_privileges": True, "cap_drop": None, "cap_add": None}
    if settings.non_root:
        hardening["cap_drop"] = ["ALL"]
    elif settings.root_start:
        hardening["cap_drop"] = ["ALL"]
        hardening["cap_add"] = list(ROOT_START_CAPABILITIES)
    return hardening


def _limit_values(limits):
    """(Limits field, value) of the limits that are set."""
    for field, *_rest in LIMITS:
        value = getattr(limits, field)
        if value and not (field == "pids_limit" and value < 0):
            yield field, value


def _without_none(mapping):
    return {k: v for k, v in mapping.items() if v is not None}


def container_create_args(settings):
    """Keyword arguments of ``APIClient.create_container`` for this server.

    ``host_config`` holds ``create_host_config`` keyword arguments and
    ``networking_config`` maps a network name to ``create_endpoint_config`` keyword
    arguments: the caller turns them into the SDK's objects for its API version.
    """
    hardening = privileges(settings)
    host_config = {
        "binds": thaw(settings.binds),
        "links": thaw(settings.links) or None,
        "network_mode": settings.network,
        "security_opt": ["no-new-privileges"] if hardening["no_new_privileges"] else None,
        "cap_drop": hardening["cap_drop"],
        "cap_add": hardening["cap_add"],
        "mounts": thaw(settings.mounts) or None,
    }
    by_field = {field: (key, convert) for field, key, convert, *_rest in LIMITS}
    for field, value in _limit_values(settings.limits):
        key, convert = by_field[field]
        host_config[key] = convert(value)
    if settings.gpu_ids:
        host_config["device_requests"] = [
            {"driver": "nvidia", "device_ids": list(settings.gpu_ids), "capabilities": [["gpu"]]}
        ]
    if settings.publish_on is not None:
        host_config["port_bindings"] = {settings.port: (settings.publish_on,)}
    host_config.update(thaw(settings.extra_host))
    create = {
        "image": settings.image,
        "name": settings.name,
        "command": thaw(settings.command),
        "environment": settings.environment_list,
        "labels": thaw(settings.labels),
        "ports": [settings.port],
        "user": settings.user,
        "host_config": _without_none(host_config),
    }
    if settings.network not in BUILTIN_NETWORKS and not settings.network.startswith("container:"):
        create["networking_config"] = {settings.network: {}}
    create.update({k: thaw(v) for k, v in settings.extra_create.items() if k != "user"})
    return _without_none(create)


# extra_create_kwargs keys a service can honour, as ContainerSpec keys (dockerspawner's
# SwarmSpawner passed Hostname, Dir and Groups through as they are).
CREATE_KWARGS_AS_CONTAINER_SPEC = {
    "hostname": "Hostname",
    "working_dir": "Dir",
    "entrypoint": "Command",
    "tty": "TTY",
    "stdin_open": "OpenStdin",
    "stop_signal": "StopSignal",
    "Hostname": "Hostname",
    "Dir": "Dir",
    "Groups": "Groups",
}


def service_mounts(settings):
    """Binds and mounts as swarm Mount specs; named volumes get the driver and labels."""
    driver = thaw(settings.service.volume_driver) if settings.service else None
    mounts = []
    for source, spec in settings.binds.items():
        mount = {"Target": spec["bind"], "Source": source, "ReadOnly": spec["mode"] == "ro"}
        if source.startswith("/"):
            mount["Type"] = "bind"
        else:
            mount["Type"] = "volume"
            mount["VolumeOptions"] = {"Labels": thaw(settings.volume_labels)}
            if driver:
                mount["VolumeOptions"]["DriverConfig"] = driver
        mounts.append(mount)
    mounts.extend(thaw(settings.mounts))
    return mounts


def service_spec(settings):
    """Keyword arguments of ``APIClient.create_service`` for this server."""
    service = settings.service or ServiceOptions()
    hardening = privileges(settings)
    container = {
        "Image": settings.image,
        "Env": settings.environment_list,
        "Labels": thaw(settings.labels),
        "Mounts": service_mounts(settings),
        "StopGracePeriod": int(settings.stop_timeout * 1e9),
        # Args is the service's CMD (Command would replace the image's ENTRYPOINT,
        # such as tini), as `command` is for a container.
        "Args": thaw(settings.command),
        "User": None if settings.user is None else str(settings.user),
        # Services cannot set no-new-privileges before Engine API 1.44.
        "CapabilityDrop": hardening["cap_drop"],
        "CapabilityAdd": hardening["cap_add"],
    }
    container = _without_none(container)
    for key, value in settings.extra_create.items():
        if key in CREATE_KWARGS_AS_CONTAINER_SPEC:
            container[CREATE_KWARGS_AS_CONTAINER_SPEC[key]] = thaw(value)
    container.update(thaw(service.extra_container_spec))

    resources = {"Limits": {}, "Reservations": {}}
    by_field = {field: (section, key, convert) for field, _key, _convert, section, key, convert in LIMITS}
    for field, value in _limit_values(settings.limits):
        section, key, convert = by_field[field]
        resources[section][key] = convert(value)
    if settings.gpus:
        # The swarm picks a node with that many free and hands the task their ids.
        resources["Reservations"]["GenericResources"] = [
            {"DiscreteResourceSpec": {"Kind": service.gpu_resource_kind, "Value": settings.gpus}}
        ]
    resources.update(thaw(service.extra_resources_spec))

    task = {
        "ContainerSpec": container,
        "Resources": resources,
        # A server that dies stays dead; the hub notices and the user restarts it.
        "RestartPolicy": {"Condition": "none"},
        "Placement": thaw(service.placement),
        "Networks": [{"Target": settings.network}],
    }
    task.update(thaw(service.extra_task_spec))
    endpoint = {"Mode": service.endpoint_mode}
    endpoint.update(thaw(service.extra_endpoint_spec))
    return {
        "task_template": task,
        "name": settings.name,
        "labels": thaw(settings.labels),
        "mode": {"Replicated": {"Replicas": 1}},
        "endpoint_spec": endpoint,
    }


def limits_environment(environment, limits):
    """``environment`` with JupyterHub's limit variables replaced by the resolved limits."""
    environment = {k: v for k, v in environment.items() if k not in LIMIT_ENVIRONMENT}
    environment.update(limits.environment())
    return environment


__all__ = [
    "LIMITS",
    "Limits",
    "ServerSettings",
    "ServiceOptions",
    "container_create_args",
    "freeze",
    "limits_environment",
    "privileges",
    "service_mounts",
    "service_spec",
    "thaw",
]
