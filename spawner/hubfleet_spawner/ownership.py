"""Who owns a user's files, and making every writable mount theirs at the first spawn.

Docker creates a new named volume's root owned by root (or copies up the image's
directory at that path, with the image's ownership), and ``-v /host/dir`` creates a
missing host directory owned by root. A server running as jovyan then cannot save a
single file. One step fixes that for every spawner, before the server's container or
service is created:

1. ``owner_spec``: whose the files must be: the configured user, the image's ``USER``
   or, for images that start as root and switch users themselves, ``NB_UID``/``NB_GID``.
   The prep container resolves names in the image's own /etc/passwd and /etc/group.
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

from collections import namedtuple

# Standard library only at import: the hub's Docker API filter shares the constants.

# Capabilities of the preparation container: chown a root it may not own, read past
# a root-only mode. Nothing else; the user's server keeps none of them.
PREP_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER")

# root_start: what an entrypoint needs to switch to NB_UID (SETUID, SETGID) and to
# chown the home (CHOWN_HOME); lost with the switch, and no-new-privileges stays.
ROOT_START_CAPABILITIES = ("CHOWN", "SETUID", "SETGID")

# Volumes created with this label were prepared at creation (or removed when that failed).
LABEL_PREPARED = "hubfleet.prepared"

ALWAYS = "always"  # a volume created for this spawn: chown its root
IF_EMPTY = "empty"  # may hold someone's data: chown its root only when it is empty
SHARED = "shared"  # a group's volume created for this spawn: every member may write its root
# A named volume on a swarm node, which the hub cannot look at: chown its root when it is
# empty or still root's (what Docker makes of a volume it creates at a missing mount point).
NEW_ON_NODE = "new"

# Runs in the prep container; needs /bin/sh, find and chown, as every Debian, Alpine
# or busybox based image has. `find -maxdepth 0 -empty` looks at the root alone.
PREPARE_SCRIPT = r"""
set -eu
user=${HUBFLEET_OWNER%%:*}
group=$(expr "$HUBFLEET_OWNER" : '[^:]*:\(.*\)' || true)
if uid=$(id -u "$user" 2>/dev/null); then
  login_gid=$(id -g "$user")
else
  case $user in
    *[!0-9]*) echo "The server's user '$user' is not in the image's /etc/passwd." >&2; exit 3 ;;
  esac
  uid=$user login_gid=0  # as Docker: a uid without an /etc/passwd entry gets gid 0
fi
case $group in
  "") gid=$login_gid ;;
  *[!0-9]*)
    gid=$(awk -F: -v g="$group" '$1 == g { print $3; exit }' /etc/group)
    [ -n "$gid" ] || { echo "The server's group '$group' is not in the image's /etc/group." >&2; exit 3; } ;;
  *) gid=$group ;;
esac
for spec in "$@"; do
  rule=${spec%%:*} path=${spec#*:}
  if [ "$rule" = shared ]; then
    chown "$uid:$gid" "$path" && chmod 0777 "$path"
    echo "prepared $path for every member"
  elif [ "$rule" = always ] || [ -n "$(find "$path" -maxdepth 0 -empty)" ] ||
       { [ "$rule" = new ] && [ -n "$(find "$path" -maxdepth 0 -user 0)" ]; }; then
    chown "$uid:$gid" "$path"
    echo "prepared $path for $uid:$gid"
  fi
done
"""

MountToPrepare = namedtuple("MountToPrepare", "kind source target rule mount")


class OwnerError(ValueError):
    """The server's user cannot be resolved from the configuration and the image."""


def env_value(environment, key):
    for item in environment or []:
        if item.startswith(key + "="):
            return item.split("=", 1)[1]
    return None


def owner_spec(user, root_start=False, environment=(), image_environment=()):
    """Whose the server's files must be, as a user spec the prep container resolves in
    the image's own /etc/passwd and /etc/group ("jovyan", "1001", "1000:100",
    "app:staff"); None for a root server, which needs nothing.

    ``user`` is the container's user as Docker takes it. With ``root_start`` the
    container starts as root and its entrypoint switches to ``NB_UID``/``NB_GID``
    (from the spawner's environment, else the image's, else docker-stacks' 1000:100).
    """
    if root_start:
        values = []
        for key, fallback in (("NB_UID", "1000"), ("NB_GID", "100")):
            value = env_value(environment, key) or env_value(image_environment, key) or fallback
            if not value.isdigit():
                raise OwnerError("%s=%r must be a number for root_start images." % (key, value))
            values.append(value)
        return ":".join(values) if values[0] != "0" else None
    spec = str(user if user is not None else "").strip()
    if spec.partition(":")[0] in ("", "0", "root"):
        return None
    return spec


def mounts_to_prepare(plan, created_volumes, prepared_volumes, shared_volumes=()):
    """The writable mounts of ``plan`` (a VolumePlan) that the server's user may not own yet.

    ``created_volumes``: named volumes created for this spawn (rule ALWAYS, or SHARED for
    those in ``shared_volumes``: group volumes, whose members may run as other uids).
    ``prepared_volumes``: existing volumes that were prepared when created (skipped).
    Other existing volumes and writable host binds get the IF_EMPTY rule. Read-only
    mounts, tmpfs and anonymous volumes are never touched.
    """
    wanted = []

    def consider(kind, source, target, mount=None):
        if kind == "volume":
            if source in prepared_volumes and source not in created_volumes:
                return
            rule = (SHARED if source in shared_volumes else ALWAYS) if source in created_volumes else IF_EMPTY
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


def mounts_to_prepare_on_node(plan):
    """``mounts_to_prepare`` for a swarm task's node: the hub cannot tell which volumes
    exist there, so every writable named volume gets the NEW_ON_NODE rule (a root
    already the user's, or holding someone's files under another owner, is left alone),
    writable host binds IF_EMPTY."""
    return [m._replace(rule=NEW_ON_NODE) if m.kind == "volume" else m for m in mounts_to_prepare(plan, (), ())]


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


def prep_host_config(binds, mounts, capabilities=PREP_CAPABILITIES):
    """create_host_config keyword arguments of the prep container (besides binds/mounts);
    the home lookup (home.py) runs in the same shape with no capability at all."""
    config = {
        "binds": binds,
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "cap_add": list(capabilities),
        "security_opt": ["no-new-privileges"],
        "pids_limit": 64,
        "mem_limit": 64 * 1024 * 1024,
        "nano_cpus": 500_000_000,
    }
    if mounts:
        config["mounts"] = mounts
    return config


def prep_service_spec(image, to_prepare, owner, mounts, labels, placement):
    """create_service keyword arguments of the prep task on a swarm: the prep container's
    shape as a one-shot service (``mounts``: the server's swarm Mount specs of
    ``to_prepare``, so the volume is created on the task's node with its labels and driver).
    Swarm services cannot join the "none" network; the task runs only PREPARE_SCRIPT."""
    entrypoint, command = prepare_command(to_prepare)
    return {
        "task_template": {
            "ContainerSpec": {
                "Image": image,
                "Command": entrypoint,
                "Args": command,
                "User": "0:0",
                "Env": ["HUBFLEET_OWNER=" + owner],
                "Labels": dict(labels),
                "Mounts": [dict(mount, ReadOnly=False) for mount in mounts],
                "CapabilityDrop": ["ALL"],
                "CapabilityAdd": list(PREP_CAPABILITIES),
            },
            "Resources": {"Limits": {"MemoryBytes": 64 * 1024 * 1024, "NanoCPUs": 500_000_000, "Pids": 64}},
            "RestartPolicy": {"Condition": "none"},
            "Placement": dict(placement),
        },
        "labels": dict(labels),
        "mode": {"Replicated": {"Replicas": 1}},
    }


async def run_prep_container(api, image, to_prepare, owner, labels, timeout=60):
    """Run the prep container for ``to_prepare`` and remove it; SpawnError when it fails."""
    import docker.errors
    import requests.exceptions

    from .errors import SpawnError

    entrypoint, command = prepare_command(to_prepare)
    binds, mounts = prep_binds_and_mounts(to_prepare)
    container = await api.call(
        "create_container",
        image,
        entrypoint=entrypoint,
        command=command,
        user="0:0",
        environment=["HUBFLEET_OWNER=" + owner],
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
                "Could not make %s writable for %s (exit status %s): %s"
                % (", ".join(m.target for m in to_prepare), owner, result.get("StatusCode"), logs)
            )
    finally:
        try:
            await api.call("remove_container", container["Id"], force=True)
        except docker.errors.NotFound:
            pass
