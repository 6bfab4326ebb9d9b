"""Volume templating: one place that turns volume/mount config into Docker's terms.

Config follows dockerspawner: ``volumes`` maps a host path or a volume name to a
guest path (or ``{"bind": path, "mode": "ro"}``), ``read_only_volumes`` likewise
read-only, ``mounts`` is a list of Docker mount dicts. Every string may use the
template fields of ``naming.template_names``. Host paths go through
``naming.host_path`` (they never leave their base directory); volume names through
``naming.volume_name``. Nothing may expose the Docker socket.
"""

import posixpath

from .naming import UnsafeNameError, host_path, render, volume_name

# A user who can reach the engine's socket owns the host; none of these is ever mounted.
DOCKER_SOCKET_PATHS = ("/var/run/docker.sock", "/run/docker.sock")


class UnsafeVolumeError(UnsafeNameError):
    """A volume or mount the spawner refuses to give a user container."""


def check_not_docker_socket(source):
    source = posixpath.normpath(source)
    for socket_path in DOCKER_SOCKET_PATHS:
        if socket_path == source or socket_path.startswith(source.rstrip("/") + "/"):
            raise UnsafeVolumeError(
                "Refusing to mount %s into a user container: it exposes the Docker socket %s."
                % (source, socket_path)
            )


def _is_host_path(source):
    return source.startswith("/")


def render_source(template, names, format_volume_name=None):
    """A bind source (host path) or a named volume, rendered and checked."""
    if _is_host_path(template):
        path = host_path(template, names)
        check_not_docker_socket(path)
        return path
    if format_volume_name is not None:
        return volume_name(format_volume_name(template, names), names)
    return volume_name(template, names)


def _guest_path(template, names):
    path = render(template, names)
    if not path.startswith("/") or "\x00" in path:
        raise UnsafeVolumeError("Volume target %r (from %r) must be an absolute path." % (path, template))
    return path


class VolumePlan:
    """What a container needs: bind specs, mount specs, and named volumes to create."""

    def __init__(self):
        self.binds = {}
        self.mounts = []
        self.named_volumes = []
        # name -> DriverConfig ({"Name", "Options"}) from a mount's VolumeOptions.
        self.volume_drivers = {}

    @property
    def targets(self):
        targets = [spec["bind"] for spec in self.binds.values()]
        targets.extend(mount["Target"] for mount in self.mounts)
        return targets

    def _add_named(self, name):
        if name not in self.named_volumes:
            self.named_volumes.append(name)


def plan_volumes(volumes, read_only_volumes, mounts, names, format_volume_name=None):
    """Render every volume and mount for one user server into a ``VolumePlan``."""
    plan = VolumePlan()
    entries = [(source, spec, None) for source, spec in (volumes or {}).items()]
    entries += [(source, spec, "ro") for source, spec in (read_only_volumes or {}).items()]
    for source_template, spec, forced_mode in entries:
        if isinstance(spec, dict):
            target_template = spec.get("bind")
            mode = spec.get("mode", "rw")
        else:
            target_template, mode = spec, "rw"
        if not target_template:
            raise UnsafeVolumeError("Volume %r has no target path ('bind')." % source_template)
        source = render_source(source_template, names, format_volume_name)
        if not _is_host_path(source):
            plan._add_named(source)
        plan.binds[source] = {"bind": _guest_path(target_template, names), "mode": forced_mode or mode}
    for mount in mounts or []:
        plan.mounts.append(_render_mount(mount, names, plan, format_volume_name))
    return plan


def plan_group_volumes(plan, group_volumes, groups, names, escape):
    """Add to ``plan`` the volumes of each of the user's JupyterHub ``groups``: every
    {name template: target template} of ``group_volumes`` with ``{groupname}`` (escaped by
    ``escape``, as user names are), read-write. Returns {volume name: group name}."""
    owners = {}
    for group in sorted(groups):
        group_names = dict(names, groupname=escape(group))
        for source_template, target_template in (group_volumes or {}).items():
            if _is_host_path(source_template):
                raise UnsafeVolumeError("group_volumes: %r is a host path; only named volumes." % source_template)
            name = volume_name(source_template, group_names)
            if name in owners and owners[name] != group:
                raise UnsafeVolumeError(
                    "group_volumes: groups %r and %r both map to volume %s; use {groupname} in %r."
                    % (owners[name], group, name, source_template)
                )
            plan._add_named(name)
            plan.binds[name] = {"bind": _guest_path(target_template, group_names), "mode": "rw"}
            owners[name] = group
    return owners


def _render_mount(mount, names, plan, format_volume_name):
    """Render a dockerspawner-style mount dict into the Engine API's Mount shape."""
    mount = dict(mount)
    kind = mount.pop("type", mount.pop("Type", "volume"))
    source = mount.pop("source", mount.pop("Source", ""))
    target = mount.pop("target", mount.pop("Target", ""))
    read_only = mount.pop("read_only", mount.pop("ReadOnly", False))
    rendered = {"Type": kind, "Target": _guest_path(target, names), "ReadOnly": bool(read_only)}
    if kind == "bind":
        rendered["Source"] = render_source(source, names)
        if not _is_host_path(rendered["Source"]):
            raise UnsafeVolumeError("Bind mount source %r must be an absolute host path." % source)
    elif kind == "volume":
        if source:
            rendered["Source"] = render_source(source, names, format_volume_name)
            plan._add_named(rendered["Source"])
    elif source:
        rendered["Source"] = render(source, names)
    for key, value in mount.items():
        # VolumeOptions, BindOptions, TmpfsOptions … in either spelling.
        api_key = "".join(part[:1].upper() + part[1:] for part in key.split("_"))
        rendered[api_key] = render_nested(value, names)
    driver = (rendered.get("VolumeOptions") or {}).get("DriverConfig")
    if kind == "volume" and rendered.get("Source") and driver:
        plan.volume_drivers[rendered["Source"]] = driver
    return rendered


def render_nested(value, names):
    """Apply the name template fields to every string inside dicts and lists."""
    if isinstance(value, str):
        return render(value, names)
    if isinstance(value, dict):
        return {render_nested(k, names): render_nested(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(render_nested(v, names) for v in value)
    return value
