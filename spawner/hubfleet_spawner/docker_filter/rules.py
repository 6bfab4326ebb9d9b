"""The rule engine of the hub's Docker API filter: pure logic, no I/O.

``decide(policy, method, path, query, body)`` returns a ``Verdict`` (the request may
go on, perhaps with its list filters narrowed to this hub, once the objects it names
are confirmed to be this hub's) or raises ``Refused`` naming the rule. The proxy
(``proxy.py``) asks the engine about the objects in ``Verdict.owned`` and applies
``owner_of`` to each answer; nothing else here talks to Docker.

What a hub may do is what the Hubfleet spawners, the idle culler and the hub's health
checks need (see the README's "Security model"), everything else is refused.
"""

import json
import posixpath
import re

from ..labels import KIND_VOLUME_PREP, LABEL_HUB, LABEL_KIND
from ..ownership import PREP_CAPABILITIES, ROOT_START_CAPABILITIES, prepare_command
from ..volumes import DOCKER_SOCKET_PATHS

_VERSION_PREFIX = re.compile(r"^/v[0-9]+(?:\.[0-9]+)?(?=/)")
ROOT_USERS = ("", "0", "root")
# Namespace modes that share the host's namespace, or another container's.
_SHARED_NAMESPACE = re.compile(r"^(host|container:.*)$")
_SAFE_SECURITY_OPTS = ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true")
# Pseudo-networks a container may name besides the hub's own networks.
_NO_NETWORK = ("none",)
# What a GPU device request may ask the NVIDIA runtime for (each set must include "gpu").
GPU_CAPABILITIES = ("gpu", "compute", "utility", "graphics", "video", "display", "compat32")


class Refused(Exception):
    """A request this hub may not make: HTTP 403 with ``rule`` and ``message``."""

    def __init__(self, rule, message):
        super().__init__("%s: %s" % (rule, message))
        self.rule = rule
        self.message = message

    def body(self):
        return json.dumps({"message": "hubfleet docker filter refused this request (rule %s): %s" % (self.rule, self.message)})


class PolicyError(ValueError):
    """A filter configuration that is not valid, naming the setting."""


class Policy:
    """What one hub may do, from the settings that configure its spawner.

    ``hub``: the hubfleet.hub label value; ``networks``: names of the networks its
    servers join; ``bind_dirs``: host directories bind mounts may come from;
    ``allow_root``: user servers may run as root; ``devices``: host device paths an
    operator allows; ``gpus``: GPU device ids (NVIDIA indexes or UUIDs) device requests
    may name; ``exec_commands``: the commands the spawner's post_start_cmd
    runs (argv lists, see ``exec_argv``), the only ones an exec may run (none: no exec);
    ``allow_pull``: the pull policy pulls; ``require_memory_limit`` /
    ``require_cpu_limit`` / ``require_pids_limit``: creations must carry them;
    ``volume_drivers``: drivers user volumes may use.
    """

    FIELDS = {
        "hub": str,
        "networks": list,
        "bind_dirs": list,
        "allow_root": bool,
        "devices": list,
        "gpus": list,
        "exec_commands": list,
        "allow_pull": bool,
        "require_memory_limit": bool,
        "require_cpu_limit": bool,
        "require_pids_limit": bool,
        "volume_drivers": list,
        "root_start": bool,
    }
    DEFAULTS = {
        "networks": [],
        "bind_dirs": [],
        "allow_root": False,
        "devices": [],
        "gpus": [],
        "exec_commands": [],
        "allow_pull": False,
        "require_memory_limit": True,
        "require_cpu_limit": True,
        "require_pids_limit": True,
        "volume_drivers": ["local"],
        "root_start": False,
    }

    def __init__(self, **settings):
        unknown = sorted(set(settings) - set(self.FIELDS))
        if unknown:
            raise PolicyError("unknown docker filter setting(s): %s" % ", ".join(unknown))
        values = dict(self.DEFAULTS, **settings)
        for name, kind in self.FIELDS.items():
            if name not in values:
                raise PolicyError("docker filter setting %r is required" % name)
            if not isinstance(values[name], kind):
                raise PolicyError("docker filter setting %r must be a %s, not %r" % (name, kind.__name__, values[name]))
            setattr(self, name, values[name])
        if not self.hub:
            raise PolicyError("docker filter setting 'hub' must not be empty")
        for directory in self.bind_dirs:
            if not isinstance(directory, str) or not directory.startswith("/") or posixpath.normpath(directory) == "/":
                raise PolicyError("docker filter setting 'bind_dirs': %r must be an absolute directory other than /" % (directory,))
        self.bind_dirs = [posixpath.normpath(d) for d in self.bind_dirs]
        for command in self.exec_commands:
            if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
                raise PolicyError("docker filter setting 'exec_commands': %r must be a non-empty list of strings"
                                  % (command,))

    @property
    def allow_exec(self):
        return bool(self.exec_commands)

    @classmethod
    def from_json(cls, text):
        try:
            settings = json.loads(text)
        except ValueError as e:
            raise PolicyError("docker filter configuration is not JSON: %s" % e)
        if not isinstance(settings, dict):
            raise PolicyError("docker filter configuration must be a JSON object")
        return cls(**settings)

    def to_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    @property
    def label_filter(self):
        return "%s=%s" % (LABEL_HUB, self.hub)


class Verdict:
    """An allowed request: ``query`` to send on (filters narrowed to this hub),
    ``owned``: (kind, id, missing) objects that must be this hub's before it goes on
    (``missing``: "pass" lets the engine's 404 through, "refuse" refuses)."""

    def __init__(self, rule, query=None, owned=()):
        self.rule = rule
        self.query = query
        self.owned = list(owned)


# --- requests ----------------------------------------------------------------------------


def strip_version(path):
    """``/v1.41/containers/json`` -> ``/containers/json``."""
    return _VERSION_PREFIX.sub("", path, count=1)


def _labels_of_hub(policy, labels):
    return isinstance(labels, dict) and labels.get(LABEL_HUB) == policy.hub


def with_hub_filter(policy, query):
    """The query with its ``filters`` narrowed to objects labelled for this hub."""
    query = {k: list(v) for k, v in (query or {}).items()}
    raw = (query.get("filters") or ["{}"])[-1] or "{}"
    try:
        filters = json.loads(raw)
    except ValueError:
        raise Refused("filters", "the filters parameter is not JSON")
    if not isinstance(filters, dict):
        raise Refused("filters", "the filters parameter must be a JSON object")
    labels = filters.get("label", [])
    if isinstance(labels, dict):  # the older {"key=value": true} form
        labels = [k for k, v in labels.items() if v]
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list):
        raise Refused("filters", "the label filter must be a list")
    if policy.label_filter not in labels:
        labels = list(labels) + [policy.label_filter]
    filters["label"] = labels
    query["filters"] = [json.dumps(filters)]
    return query


def _one(query, name):
    values = (query or {}).get(name) or []
    return values[-1] if values else None


# --- checks of what a hub creates ----------------------------------------------------------


def check_labels(policy, labels, what):
    if not _labels_of_hub(policy, labels):
        raise Refused("labels", "%s must carry the label %s" % (what, policy.label_filter))


def check_host_path(policy, source, what):
    """A bind source: under a configured base directory, never the Docker socket."""
    if not isinstance(source, str) or not source.startswith("/"):
        raise Refused("binds", "%s: bind source %r is not an absolute host path" % (what, source))
    path = posixpath.normpath(source)
    if path in DOCKER_SOCKET_PATHS:
        raise Refused("docker-socket", "%s: %s is the Docker socket" % (what, source))
    if not any(path == base or path.startswith(base + "/") for base in policy.bind_dirs):
        allowed = ", ".join(policy.bind_dirs) or "none are configured"
        raise Refused("binds", "%s: bind of %s is outside the allowed base directories (%s)" % (what, source, allowed))
    for socket_path in DOCKER_SOCKET_PATHS:
        if socket_path.startswith(path.rstrip("/") + "/"):
            raise Refused("docker-socket", "%s: %s would expose the Docker socket %s" % (what, source, socket_path))


def check_user(policy, user, what):
    if policy.allow_root:
        return
    name = str(user if user is not None else "").split(":", maxsplit=1)[0].strip()
    if name in ROOT_USERS:
        raise Refused("user", "%s runs as root (user %r); root is not allowed for this hub" % (what, user or ""))


def check_driver_options(policy, driver, options, what):
    """A volume driver and its options: an allowed driver, and no bind of a host path
    through the local driver (``o=bind``, ``device=/``) that the bind rules would refuse."""
    if driver not in ("", None) and driver not in policy.volume_drivers:
        raise Refused("volume-driver", "%s: volume driver %r is not allowed (allowed: %s)"
                      % (what, driver, ", ".join(policy.volume_drivers)))
    options = options or {}
    if not isinstance(options, dict):
        raise Refused("volume-driver", "%s: driver options must be a mapping" % what)
    mount_options = str(options.get("o", "")).replace(" ", "").split(",")
    if "bind" in mount_options or "rbind" in mount_options:
        check_host_path(policy, options.get("device"), what + " (a local volume bound to a host path)")


def check_mount(policy, mount, what, owned, in_service=False):
    """One Mount spec (containers' HostConfig.Mounts, services' ContainerSpec.Mounts)."""
    if not isinstance(mount, dict):
        raise Refused("mounts", "%s: a mount must be an object" % what)
    kind = mount.get("Type", "volume")
    source = mount.get("Source") or ""
    if kind == "bind":
        check_host_path(policy, source, what)
    elif kind == "volume":
        options = mount.get("VolumeOptions") or {}
        driver = (options.get("DriverConfig") or {})
        check_driver_options(policy, driver.get("Name"), driver.get("Options"), what)
        if in_service:
            # A service's volume is made on the node its task lands on: it must be made labelled.
            if source:
                check_labels(policy, options.get("Labels"), "%s: volume %s" % (what, source))
        elif source:
            owned.append(("volume", source, "refuse"))
        else:
            raise Refused("mounts", "%s: anonymous volumes are not labelled for the hub" % what)
    elif kind == "tmpfs":
        pass
    else:
        raise Refused("mounts", "%s: mounts of type %r are not allowed" % (what, kind))


def _check_binds(policy, binds, owned):
    for bind in binds or []:
        if not isinstance(bind, str):
            raise Refused("binds", "a bind must be a string")
        source = bind.split(":", 1)[0]
        if source.startswith("/"):
            check_host_path(policy, source, "the container")
        else:
            owned.append(("volume", source, "refuse"))


def _check_network(policy, name, what):
    if name in _NO_NETWORK:
        return
    if name == "default":
        name = "bridge"
    if name not in policy.networks:
        if name == "host":
            raise Refused("host-namespace", "%s may not use the host's network" % what)
        raise Refused("networks", "%s: network %r is not one of this hub's networks (%s)"
                      % (what, name, ", ".join(policy.networks) or "none"))


def _require_limits(policy, memory, cpu, pids, what):
    if policy.require_memory_limit and not memory:
        raise Refused("limits", "%s has no memory limit" % what)
    if policy.require_cpu_limit and not cpu:
        raise Refused("limits", "%s has no CPU limit" % what)
    if policy.require_pids_limit and not (pids and pids > 0):
        raise Refused("limits", "%s has no pids limit" % what)


def check_device_requests(policy, requests, what):
    """Device requests only of the nvidia driver, for GPUs named one by one, all allowlisted:
    never a count (the engine would choose, -1 means every GPU), never driver options."""
    for request in requests or []:
        if not isinstance(request, dict):
            raise Refused("devices", "%s: a device request must be an object" % what)
        if request.get("Driver") not in (None, "", "nvidia"):
            raise Refused("devices", "%s: device requests of driver %r are not allowed (only nvidia GPUs)"
                          % (what, request.get("Driver")))
        groups = request.get("Capabilities") or []
        if not groups or not all(isinstance(g, list) and "gpu" in g and set(g) <= set(GPU_CAPABILITIES)
                                 for g in groups):
            raise Refused("devices", "%s: a device request may ask only for GPUs (capabilities %r)" % (what, groups))
        if request.get("Count") not in (None, 0) or request.get("Options"):
            raise Refused("devices", "%s: a GPU request must name its devices, with no count or options" % what)
        ids = request.get("DeviceIDs") or []
        refused = [d for d in ids if d not in policy.gpus] if ids else ["(none named)"]
        if refused:
            raise Refused("devices", "%s: GPU %s is not allowlisted (allowed: %s)"
                          % (what, ", ".join(map(str, refused)), ", ".join(policy.gpus) or "none"))


def check_security_opts(options, what):
    for option in options or []:
        if str(option).replace(" ", "") not in _SAFE_SECURITY_OPTS:
            raise Refused("security-opt", "%s: security option %r would weaken the defaults" % (what, option))


def _root_exception(policy, body, host):
    """The capabilities a root container may add, or None when it is none of the two
    shapes that need root: the spawner's volume preparation (hubfleet_spawner.ownership:
    chown the root of a new volume, no network) and, with ``root_start``, a
    docker-stacks style server whose entrypoint switches to NB_UID. Both drop ALL first."""
    if "ALL" not in [str(c).upper() for c in host.get("CapDrop") or []]:
        return None
    if (body.get("Labels") or {}).get(LABEL_KIND) == KIND_VOLUME_PREP:
        return PREP_CAPABILITIES if host.get("NetworkMode") == "none" else None
    return ROOT_START_CAPABILITIES if policy.root_start else None


def check_labelled_body(policy, body, kind):
    """A create request's JSON body, carrying this hub's labels; returns "the <kind>"."""
    if not isinstance(body, dict):
        raise Refused("body", "a %s create needs a JSON body" % kind)
    what = "the %s" % kind
    check_labels(policy, body.get("Labels"), what)
    return what


def check_container_create(policy, body):
    """POST /containers/create; returns the volumes that must be this hub's."""
    what = check_labelled_body(policy, body, "container")
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise Refused("body", "HostConfig must be an object")
    allowed_caps = _root_exception(policy, body, host)
    if allowed_caps is None:
        check_user(policy, body.get("User"), what)
        allowed_caps = ()
    if host.get("Privileged"):
        raise Refused("privileged", "%s may not be privileged" % what)
    for key, name in (("PidMode", "PID"), ("IpcMode", "IPC"), ("UTSMode", "UTS"), ("UsernsMode", "user"),
                      ("CgroupnsMode", "cgroup")):
        value = host.get(key) or ""
        if _SHARED_NAMESPACE.match(value):
            raise Refused("host-namespace", "%s may not share the %s namespace (%s=%s)" % (what, name, key, value))
    network = host.get("NetworkMode") or "default"
    if network.startswith("container:"):
        raise Refused("host-namespace", "%s may not join another container's network (%s)" % (what, network))
    _check_network(policy, network, what)
    endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    for name in endpoints:
        _check_network(policy, name, what)
    if set(map(str, host.get("CapAdd") or [])) - set(allowed_caps):
        raise Refused("cap-add", "%s may not add capabilities (%s)" % (what, ", ".join(map(str, host["CapAdd"]))))
    if host.get("Capabilities") is not None:  # the whole capability set, replacing the defaults
        raise Refused("cap-add", "%s may not set its capability set (Capabilities)" % what)
    for device in host.get("Devices") or []:
        path = (device or {}).get("PathOnHost") if isinstance(device, dict) else device
        if path not in policy.devices:
            raise Refused("devices", "%s: device %s is not allowlisted" % (what, path))
    check_device_requests(policy, host.get("DeviceRequests"), what)
    if host.get("DeviceCgroupRules"):
        raise Refused("devices", "%s may not add device cgroup rules" % what)
    check_security_opts(host.get("SecurityOpt"), what)
    if not any(str(o).startswith("no-new-privileges") for o in host.get("SecurityOpt") or []):
        raise Refused("security-opt", "%s must set no-new-privileges" % what)
    for key in ("MaskedPaths", "ReadonlyPaths"):
        # Any value, even an empty list, replaces the engine's defaults (which hide /proc/kcore and others).
        if host.get(key) is not None:
            raise Refused("security-opt", "%s may not set %s" % (what, key))
    for key, rule in (("Sysctls", "sysctls"), ("CgroupParent", "cgroup"), ("VolumesFrom", "volumes-from"),
                      ("VolumeDriver", "volume-driver")):
        if host.get(key):
            raise Refused(rule, "%s may not set %s" % (what, key))
    if host.get("OomKillDisable"):
        raise Refused("limits", "%s may not disable the OOM killer" % what)
    if host.get("Runtime") not in (None, "", "runc"):
        raise Refused("runtime", "%s may not choose the runtime %r" % (what, host.get("Runtime")))
    _require_limits(policy, host.get("Memory"), host.get("NanoCpus") or host.get("CpuQuota"),
                    host.get("PidsLimit"), what)
    owned = []
    _check_binds(policy, host.get("Binds"), owned)
    for mount in host.get("Mounts") or []:
        check_mount(policy, mount, what, owned)
    # Image-declared anonymous volumes are unlabelled but harmless; "Volumes" only declares targets.
    return owned


def check_volume_create(policy, body):
    if not isinstance(body, dict):
        raise Refused("body", "a volume create needs a JSON body")
    check_labels(policy, body.get("Labels"), "the volume %s" % body.get("Name", ""))
    check_driver_options(policy, body.get("Driver") or "local", body.get("DriverOpts"), "the volume")


def exec_argv(command):
    """The argv the spawner's exec runs for a ``post_start_cmd`` (a string runs in /bin/sh -c)."""
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


def check_exec_create(policy, body, create=True):
    """An exec (``create``: its creation, with the body; else its start or inspection)."""
    if not policy.allow_exec:
        raise Refused("exec", "exec is allowed only when the spawner's post_start_cmd is configured")
    if not create:
        return
    body = body if isinstance(body, dict) else {}
    if body.get("Privileged"):
        raise Refused("privileged", "an exec may not be privileged")
    if body.get("User"):
        check_user(policy, body["User"], "the exec")
    command = body.get("Cmd")
    if exec_argv(command if isinstance(command, (str, list)) else []) not in policy.exec_commands:
        raise Refused("exec", "the exec may run only the spawner's post_start_cmd, not %r" % (command,))


def _is_prep_service(body, task, container):
    """The spawner's prep task on a swarm (ownership.prep_service_spec): labelled volume-prep,
    every capability dropped, no network, and it runs PREPARE_SCRIPT and nothing else."""
    entrypoint = prepare_command([])[0]
    return (
        (body.get("Labels") or {}).get(LABEL_KIND) == KIND_VOLUME_PREP
        and "ALL" in [str(c).upper() for c in container.get("CapabilityDrop") or []]
        and container.get("Command") == entrypoint
        and not task.get("Networks") and not body.get("Networks")
    )


def check_service_create(policy, body):
    what = check_labelled_body(policy, body, "service")
    task = body.get("TaskTemplate") or {}
    if task.get("PluginSpec") or task.get("NetworkAttachmentSpec") or task.get("Runtime") not in (None, "", "container"):
        raise Refused("service-kind", "%s must run a container (no plugin or attachment specs)" % what)
    container = task.get("ContainerSpec")
    if not isinstance(container, dict) or not container.get("Image"):
        raise Refused("body", "%s needs a ContainerSpec with an image" % what)
    check_labels(policy, container.get("Labels"), "the service's containers")
    allowed_caps = PREP_CAPABILITIES if _is_prep_service(body, task, container) else ()
    if not allowed_caps:
        check_user(policy, container.get("User"), what)
    if set(map(str, container.get("CapabilityAdd") or [])) - set(allowed_caps):
        raise Refused("cap-add", "%s may not add capabilities (%s)" % (what, ", ".join(container["CapabilityAdd"])))
    if container.get("Sysctls"):
        raise Refused("sysctls", "%s may not set Sysctls" % what)
    for key in ("Secrets", "Configs"):
        if container.get(key):  # swarm-wide objects, other hubs' among them
            raise Refused("swarm-objects", "%s may not mount swarm %s" % (what, key.lower()))
    privileges = container.get("Privileges") or {}
    if (privileges.get("SELinuxContext") or {}).get("Disable"):
        raise Refused("security-opt", "%s may not disable SELinux labelling" % what)
    if privileges.get("Seccomp", {}).get("Mode") == "unconfined" or privileges.get("AppArmor", {}).get("Mode") == "disabled":
        raise Refused("security-opt", "%s may not weaken seccomp or AppArmor" % what)
    for mount in container.get("Mounts") or []:
        check_mount(policy, mount, what, [], in_service=True)
    for network in task.get("Networks") or []:
        _check_network(policy, (network or {}).get("Target"), what)
    mode = body.get("Mode") or {"Replicated": {}}
    if set(mode) != {"Replicated"}:
        raise Refused("service-mode", "%s must be a replicated service" % what)
    limits = ((task.get("Resources") or {}).get("Limits") or {})
    _require_limits(policy, limits.get("MemoryBytes"), limits.get("NanoCPUs"), limits.get("Pids"), what)
    ports = ((body.get("EndpointSpec") or {}).get("Ports") or [])
    if ports:
        raise Refused("ports", "%s may not publish ports (servers are reached through the proxy)" % what)


# --- the routes --------------------------------------------------------------------------

_ID = r"(?P<id>[^/]+)"
# Image names contain slashes: /images/<name>/json.
_IMAGE = r"(?P<id>.+)"


def _route(method, pattern):
    def register(handler):
        ROUTES.append((method, re.compile("^" + pattern + "$"), handler))
        return handler

    return register


ROUTES = []


def _engine(rule):
    return lambda policy, match, query, body: Verdict(rule, query)


ROUTES += [
    ("GET", re.compile(r"^/_ping$"), _engine("engine")),
    ("HEAD", re.compile(r"^/_ping$"), _engine("engine")),
    ("GET", re.compile(r"^/version$"), _engine("engine")),
    ("GET", re.compile(r"^/info$"), _engine("engine")),
    ("GET", re.compile(r"^/images/" + _IMAGE + r"/json$"), _engine("image-inspect")),
]


def _hub_list(rule):
    return lambda policy, match, query, body: Verdict(rule, with_hub_filter(policy, query))


for _path in ("/containers/json", "/volumes", "/services", "/networks", "/events"):
    ROUTES.append(("GET", re.compile("^" + _path + "$"), _hub_list("list-own")))


def _own(kind, rule):
    return lambda policy, match, query, body: Verdict(rule, query, [(kind, match.group("id"), "pass")])


for _method, _suffix, _rule in (
    ("GET", "/json", "read-own"),
    ("GET", "/logs", "read-own"),
    ("POST", "/start", "lifecycle-own"),
    ("POST", "/stop", "lifecycle-own"),
    ("POST", "/kill", "lifecycle-own"),
    ("POST", "/restart", "lifecycle-own"),
    ("POST", "/wait", "lifecycle-own"),
    ("DELETE", "", "lifecycle-own"),
):
    ROUTES.append((_method, re.compile(r"^/containers/" + _ID + _suffix + "$"), _own("container", _rule)))

ROUTES += [
    ("GET", re.compile(r"^/volumes/" + _ID + "$"), _own("volume", "read-own")),
    ("DELETE", re.compile(r"^/volumes/" + _ID + "$"), _own("volume", "lifecycle-own")),
    ("GET", re.compile(r"^/services/" + _ID + "$"), _own("service", "read-own")),
    ("GET", re.compile(r"^/services/" + _ID + "/logs$"), _own("service", "read-own")),
    ("DELETE", re.compile(r"^/services/" + _ID + "$"), _own("service", "lifecycle-own")),
    ("GET", re.compile(r"^/tasks/" + _ID + "$"), _own("task", "read-own")),
    ("GET", re.compile(r"^/networks/" + _ID + "$"), _own("network", "read-own")),
    ("GET", re.compile(r"^/nodes$"), _engine("nodes")),
    ("GET", re.compile(r"^/nodes/" + _ID + "$"), _engine("nodes")),
]


@_route("GET", r"/tasks")
def _tasks(policy, match, query, body):
    """Tasks carry no hub label of their own: only the tasks of named services of this hub."""
    try:
        filters = json.loads(_one(query, "filters") or "{}")
    except ValueError:
        raise Refused("filters", "the filters parameter is not JSON")
    services = filters.get("service") if isinstance(filters, dict) else None
    if isinstance(services, dict):
        services = [k for k, v in services.items() if v]
    if isinstance(services, str):
        services = [services]
    if not services:
        raise Refused("list-own", "listing tasks needs a service filter naming this hub's services")
    return Verdict("list-own", query, [("service", s, "refuse") for s in services])


@_route("POST", r"/containers/create")
def _container_create(policy, match, query, body):
    return Verdict("create", query, check_container_create(policy, body))


@_route("POST", r"/volumes/create")
def _volume_create(policy, match, query, body):
    check_volume_create(policy, body)
    return Verdict("create", query)


@_route("POST", r"/services/create")
def _service_create(policy, match, query, body):
    check_service_create(policy, body)
    return Verdict("create", query)


@_route("POST", r"/containers/" + _ID + r"/exec")
def _exec_create(policy, match, query, body):
    check_exec_create(policy, body)
    return Verdict("exec", query, [("container", match.group("id"), "pass")])


@_route("POST", r"/exec/" + _ID + r"/start")
def _exec_start(policy, match, query, body):
    check_exec_create(policy, None, create=False)
    return Verdict("exec", query, [("exec", match.group("id"), "pass")])


@_route("GET", r"/exec/" + _ID + r"/json")
def _exec_inspect(policy, match, query, body):
    check_exec_create(policy, None, create=False)
    return Verdict("exec", query, [("exec", match.group("id"), "pass")])


@_route("POST", r"/images/create")
def _pull(policy, match, query, body):
    if not policy.allow_pull:
        raise Refused("pull", "image pulls are off: the spawner's pull_policy never pulls")
    if _one(query, "fromSrc"):
        raise Refused("pull", "importing images is not allowed, only pulls")
    return Verdict("pull", query)


def decide(policy, method, path, query=None, body=None):
    """The verdict on one request (``path`` with or without the /v1.xx prefix)."""
    path = strip_version(path.split("?", 1)[0])
    for route_method, pattern, handler in ROUTES:
        if route_method != method:
            continue
        match = pattern.match(path)
        if match:
            return handler(policy, match, query or {}, body)
    raise Refused("not-allowed", "%s %s is not something this hub needs" % (method, path))


# --- ownership -----------------------------------------------------------------------------

LOOKUPS = {
    "container": "/containers/{}/json",
    "volume": "/volumes/{}",
    "service": "/services/{}",
    "task": "/tasks/{}",
    "exec": "/exec/{}/json",
    "network": "/networks/{}",
}


def lookup_path(kind, ident):
    from urllib.parse import quote

    return LOOKUPS[kind].format(quote(ident, safe=""))


def owner_of(policy, kind, ident, info):
    """Whether an inspected object is this hub's: True, False, or a (kind, id) that decides."""
    if kind == "container":
        return _labels_of_hub(policy, (info.get("Config") or {}).get("Labels"))
    if kind == "volume":
        return _labels_of_hub(policy, info.get("Labels"))
    if kind == "service":
        return _labels_of_hub(policy, (info.get("Spec") or {}).get("Labels"))
    if kind == "network":
        return info.get("Name") in policy.networks or _labels_of_hub(policy, info.get("Labels"))
    if kind == "exec":
        return ("container", info.get("ContainerID") or "")
    if kind == "task":
        return ("service", info.get("ServiceID") or "")
    return False


def not_owned(kind, ident):
    return Refused("not-this-hub", "%s %s is not labelled for this hub" % (kind, ident))
