"""Who owns a user's files, and making every writable mount theirs at the first spawn.

Docker creates a new named volume's root owned by root (or copies up the image's
directory at that path, with the image's ownership), and ``-v /host/dir`` creates a
missing host directory owned by root. A server running as jovyan then cannot save a
single file. One step fixes that for every spawner, before the server's container or
service is created:

1. ``resolve_owner``: the server's uid:gid, from the configured user, the image's
   ``USER`` (looked up in the image's own /etc/passwd and /etc/group) or, for images
   that start as root and switch users themselves, ``NB_UID``/``NB_GID``.
2. ``mounts_to_prepare``: only what may be new. A named volume this spawn created is
   chowned at its root (after Docker's copy-up, so the image's skeleton files are
   there); a writable host bind, or a volume made by someone else, only when its
   root is empty. Nothing is ever chowned recursively: a volume of 100 000 files
   costs nothing.
3. ``prepare_command``/``prep_host_config``: a short-lived container of the user's
   own image with only CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_FOWNER, no network,
   no-new-privileges, labelled, removed afterwards. The server itself never gets
   those capabilities.
"""

import io
import tarfile
from collections import namedtuple

import docker.errors
import requests.exceptions

from .errors import SpawnError

# Capabilities of the preparation container: chown a root it may not own, read past
# a root-only mode. Nothing else; the user's server keeps none of them.
PREP_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER")

# Volumes created with this label were prepared at creation (or removed when that failed).
LABEL_PREPARED = "hubfleet.prepared"

ALWAYS = "always"  # a volume created for this spawn: chown its root
IF_EMPTY = "empty"  # may hold someone's data: chown its root only when it is empty

# Runs in the prep container; needs /bin/sh, find and chown, as every Debian, Alpine
# or busybox based image has. `find -maxdepth 0 -empty` looks at the root alone.
PREPARE_SCRIPT = r"""
set -eu
for spec in "$@"; do
  rule=${spec%%:*}; path=${spec#*:}
  if [ "$rule" = always ] || [ -n "$(find "$path" -maxdepth 0 -empty)" ]; then
    chown "$HUBFLEET_OWNER" "$path"
    echo "prepared $path for $HUBFLEET_OWNER"
  fi
done
"""

Owner = namedtuple("Owner", "uid gid")
MountToPrepare = namedtuple("MountToPrepare", "kind source target rule mount")


class OwnerError(ValueError):
    """The server's user cannot be resolved from the configuration and the image."""


def _passwd_entries(text):
    """name -> (uid, gid) from /etc/passwd text."""
    entries = {}
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            entries.setdefault(fields[0], (int(fields[2]), int(fields[3])))
    return entries


def _group_entries(text):
    """name -> gid from /etc/group text."""
    entries = {}
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            entries.setdefault(fields[0], int(fields[2]))
    return entries


def needs_image_files(user):
    """Whether resolving ``user`` needs the image's /etc/passwd or /etc/group."""
    name, _, group = str(user or "").partition(":")
    return not (name.isdigit() and group.isdigit())


def _env_value(environment, key):
    for item in environment or []:
        if item.startswith(key + "="):
            return item.split("=", 1)[1]
    return None


def resolve_owner(user, passwd="", group="", root_start=False, environment=(), image_environment=()):
    """The uid:gid the server's files must belong to.

    ``user`` is the container's user as Docker takes it ("jovyan", "1001",
    "1000:100", "app:staff", None for the image's root). As Docker does, a numeric
    uid without an /etc/passwd entry and without a group gets gid 0. With
    ``root_start`` the container starts as root and its entrypoint switches to
    ``NB_UID``/``NB_GID`` (from the spawner's environment, else the image's, else
    docker-stacks' 1000:100).
    """
    if root_start:
        values = []
        for key, fallback in (("NB_UID", "1000"), ("NB_GID", "100")):
            value = _env_value(environment, key) or _env_value(image_environment, key) or fallback
            if not value.isdigit():
                raise OwnerError("%s=%r must be a number for root_start images." % (key, value))
            values.append(int(value))
        return Owner(*values)
    name, _, group_name = str(user or "").partition(":")
    if name in ("", "root"):
        name = "0"
    users = _passwd_entries(passwd)
    if name.isdigit():
        uid = int(name)
        primary = next((g for u, g in users.values() if u == uid), 0)
    elif name in users:
        uid, primary = users[name]
    else:
        raise OwnerError("The server's user %r is not in the image's /etc/passwd." % name)
    if not group_name:
        return Owner(uid, primary)
    if group_name.isdigit():
        return Owner(uid, int(group_name))
    groups = _group_entries(group)
    if group_name not in groups:
        raise OwnerError("The server's group %r is not in the image's /etc/group." % group_name)
    return Owner(uid, groups[group_name])


def mounts_to_prepare(plan, created_volumes, prepared_volumes, owner):
    """The writable mounts of ``plan`` (a VolumePlan) that the server's user may not own yet.

    ``created_volumes``: named volumes created for this spawn (rule ALWAYS).
    ``prepared_volumes``: existing volumes that were prepared when created (skipped).
    Other existing volumes and writable host binds get the IF_EMPTY rule. Read-only
    mounts, tmpfs and anonymous volumes are never touched; a root server needs nothing.
    """
    if owner.uid == 0:
        return []
    wanted = []

    def consider(kind, source, target, mount=None):
        if kind == "volume":
            if source in prepared_volumes and source not in created_volumes:
                return
            rule = ALWAYS if source in created_volumes else IF_EMPTY
        else:
            rule = IF_EMPTY
        wanted.append(MountToPrepare(kind, source, target, rule, mount))

    for source, spec in plan.binds.items():
        if "ro" in spec.get("mode", "rw").split(","):
            continue
        consider("bind" if source.startswith("/") else "volume", source, spec["bind"])
    for mount in plan.mounts:
        if mount.get("ReadOnly") or not mount.get("Source") or mount.get("Type") not in ("volume", "bind"):
            continue
        consider(mount["Type"], mount["Source"], mount["Target"], mount)
    return wanted


def prepare_command(to_prepare):
    """Entrypoint and arguments of the prep container for these mounts."""
    return ["/bin/sh", "-c", PREPARE_SCRIPT, "hubfleet-prepare"], ["%s:%s" % (m.rule, m.target) for m in to_prepare]


def prep_binds_and_mounts(to_prepare):
    """The prep container's binds and mounts: the same targets, so Docker copies up the
    image's content into a new volume exactly as it would for the server."""
    binds, mounts = {}, []
    for item in to_prepare:
        if item.mount is not None:
            mounts.append(dict(item.mount, ReadOnly=False))
        else:
            binds[item.source] = {"bind": item.target, "mode": "rw"}
    return binds, mounts


def prep_host_config(binds, mounts):
    """create_host_config keyword arguments of the prep container (besides binds/mounts)."""
    config = {
        "binds": binds,
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "cap_add": list(PREP_CAPABILITIES),
        "security_opt": ["no-new-privileges"],
        "pids_limit": 64,
        "mem_limit": 64 * 1024 * 1024,
    }
    if mounts:
        config["mounts"] = mounts
    return config


# image id -> (passwd, group) text; an image's files never change under its id.
_IMAGE_FILES = {}


def _read_tar_member(chunks):
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.next()
        return archive.extractfile(member).read().decode("utf-8", "replace") if member else ""


async def image_user_files(api, image_id, labels):
    """(/etc/passwd, /etc/group) of an image, read from a created, never started container."""
    if image_id in _IMAGE_FILES:
        return _IMAGE_FILES[image_id]
    container = await api.call(
        "create_container", image_id, command=["true"], entrypoint=[], labels=labels, network_disabled=True
    )
    texts = []
    try:
        for path in ("/etc/passwd", "/etc/group"):
            try:
                stream, _ = await api.call("get_archive", container["Id"], path)
                texts.append(await api.run(lambda: _read_tar_member(stream)))
            except docker.errors.NotFound:
                texts.append("")
    finally:
        await api.call("remove_container", container["Id"], force=True)
    _IMAGE_FILES[image_id] = tuple(texts)
    return _IMAGE_FILES[image_id]


async def run_prep_container(api, image, to_prepare, owner, labels, timeout=60):
    """Run the prep container for ``to_prepare`` and remove it; SpawnError when it fails."""
    entrypoint, command = prepare_command(to_prepare)
    binds, mounts = prep_binds_and_mounts(to_prepare)
    container = await api.call(
        "create_container",
        image,
        entrypoint=entrypoint,
        command=command,
        user="0:0",
        environment=["HUBFLEET_OWNER=%d:%d" % owner],
        labels=labels,
        network_disabled=True,
        host_config=api.client.create_host_config(**prep_host_config(binds, mounts)),
    )
    try:
        await api.call("start", container["Id"])
        try:
            result = await api.call("wait", container["Id"], timeout=timeout)
        except requests.exceptions.RequestException:
            raise SpawnError(
                "Making %s writable did not finish in %d s." % (", ".join(m.target for m in to_prepare), timeout)
            ) from None
        if result.get("StatusCode"):
            logs = (await api.call("logs", container["Id"], tail=10)).decode("utf-8", "replace").strip()
            raise SpawnError(
                "Could not make %s writable for uid %d:%d (exit status %s): %s"
                % (", ".join(m.target for m in to_prepare), owner.uid, owner.gid, result.get("StatusCode"), logs)
            )
    finally:
        try:
            await api.call("remove_container", container["Id"], force=True)
        except docker.errors.NotFound:
            pass
