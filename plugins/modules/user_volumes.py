#!/usr/bin/python
# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: user_volumes
short_description: Per-user (and per named server) JupyterHub volumes in bulk
version_added: 0.1.0
description:
  - Ensures, reports, backs up and removes the Docker volumes that hold users' work.
  - Volume names come from the same O(template) and escaping the Hubfleet spawner uses (one shared
    implementation), and the volumes carry the same labels (C(hubfleet.hub), C(hubfleet.kind=user-volume),
    C(hubfleet.user), C(hubfleet.server)), so volumes made here are the ones the spawner mounts.
  - Existing user volumes are found by those labels, never by parsing names.
  - Removal touches only the volumes of the users named, refuses volumes that any container mounts,
    and needs O(confirm=true).
author:
  - Hubfleet contributors (@hubfleet)
extends_documentation_fragment:
  - hubfleet.jupyterhub.docker
  - hubfleet.jupyterhub.attributes
attributes:
  diff_mode:
    details: Shows the list of user volumes before and after.
options:
  state:
    description:
      - V(present) creates the volumes of O(users) that do not exist.
      - V(absent) removes the volumes of O(users) (needs O(confirm=true)).
      - V(query) changes no volume; with O(backup_dir) it only takes backups.
    type: str
    choices: [present, absent, query]
    default: present
  users:
    description:
      - The users, as JupyterHub names them. Each element is a user name, or a dict with C(name) and C(server)
        (a named server; V("") for the default server).
      - With O(state=present) a plain name means the default server.
        With O(state=absent) a plain name means all that user's volumes.
      - Required with O(state=present) and O(state=absent). With O(state=query) it limits the report and backups.
    type: list
    elements: raw
  hub:
    description: Value of the C(hubfleet.hub) label, the hub these volumes belong to.
    type: str
    default: jupyterhub
  prefix:
    description: The C({prefix}) field of the name template (the spawner's C(prefix)).
    type: str
    default: jupyter
  template:
    description:
      - Volume name template, with the spawner's fields (C({username}), C({servername}), C({prefix})...).
      - A template without C({servername}) gives a user one volume for all their servers.
    type: str
    default: "{prefix}-user-{username}"
  driver:
    description: Driver of volumes created.
    type: str
    default: local
  labels:
    description: Extra labels for volumes created (the Hubfleet labels are always set).
    type: dict
    default: {}
  backup_dir:
    description:
      - Directory (must exist) to write a C(<volume>.tar.gz) backup of each selected volume into,
        keeping owners and modes. Files with unchanged contents are left alone.
      - With O(state=absent) the backups are taken before removal.
    type: path
  image:
    description:
      - An image already present on the engine for the never-started helper container that backups
        copy through (see M(hubfleet.jupyterhub.hub_volume)). Required with O(backup_dir).
    type: str
  confirm:
    description: Must be V(true) for O(state=absent) to remove anything.
    type: bool
    default: false
  size_limit:
    description:
      - A per-user size limit, in bytes or with a unit (V(5G), V(500M); powers of 1024, as the spawner's
        C(volume_size_limit)). The users whose volumes hold more in all are listed in RV(over_limit).
      - Sizes come from the engine's disk usage report (C(docker system df -v)), which measures every volume, so
        run it from a timer or by hand, not at every login. It changes nothing, and local volumes cannot enforce
        the limit (no block quota on overlay2).
    type: str
seealso:
  - module: hubfleet.jupyterhub.hub_volume
"""

EXAMPLES = r"""
- name: Volumes for the course's students, ready before the first login
  hubfleet.jupyterhub.user_volumes:
    users: [alice, bob, {name: carol, server: gpu}]
    template: "{prefix}-user-{username}{servername}"

- name: Report user volumes, their size and whether mounted
  hubfleet.jupyterhub.user_volumes:
    state: query
  register: user_volumes

- name: Back every user volume up
  hubfleet.jupyterhub.user_volumes:
    state: query
    backup_dir: /var/backups/jupyter-users
    image: hubfleet/debian-base:latest

- name: Users whose volumes hold more than 5 GiB
  hubfleet.jupyterhub.user_volumes:
    state: query
    size_limit: 5G
  register: usage

- name: Remove the volumes of users who left (refused while a container mounts one)
  hubfleet.jupyterhub.user_volumes:
    state: absent
    users: [mallory]
    confirm: true
"""

RETURN = r"""
volumes:
  description: The hub's user volumes (of O(users) when given) after the task, sorted by name.
  returned: success
  type: list
  elements: dict
  sample:
    - name: jupyter-user-alice
      user: alice
      server: ""
      hub: jupyterhub
      size: 40960
      mounted: false
      containers: []
created:
  description: Names of the volumes created.
  returned: success
  type: list
  elements: str
  sample: [jupyter-user-alice]
usage:
  description: Per user, the bytes all their volumes hold (None when the engine does not know), largest first.
  returned: success
  type: list
  elements: dict
  sample: [{"user": "alice", "size": 6442450944, "volumes": ["jupyter-user-alice"]}]
over_limit:
  description: The entries of RV(usage) over O(size_limit), with C(limit) (bytes) added.
  returned: when O(size_limit) is given
  type: list
  elements: dict
  sample: [{"user": "alice", "size": 6442450944, "limit": 5368709120, "volumes": ["jupyter-user-alice"]}]
removed:
  description: Names of the volumes removed.
  returned: success
  type: list
  elements: str
  sample: []
backups:
  description: One entry per backed up volume.
  returned: when O(backup_dir) is given
  type: list
  elements: dict
  sample: [{"volume": "jupyter-user-alice", "path": "/var/backups/jupyter-users/jupyter-user-alice.tar.gz", "changed": true}]
"""

import os
import tarfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.formatters import human_to_bytes
from ansible.module_utils.six import string_types

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.docker_common import (
    DOCKER_ERRORS,
    connect,
    docker_argument_spec,
    docker_error_message,
    make_diff,
    stringify_options,
)
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.labels import (
    DEFAULT_HUB,
    KIND_USER_VOLUME,
    LABEL_SERVER,
    LABEL_USER,
    label_filters,
    matches,
    object_labels,
)
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.naming import (
    DEFAULT_PREFIX,
    DEFAULT_USER_VOLUME_TEMPLATE,
    UnsafeNameError,
    template_names,
    volume_name,
)
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.volume_tools import (
    VolumeArchiver,
    archive_manifest,
    check_image_present,
    containers_using_volume,
)


def parse_users(users, server_default):
    """``[(user, server-or-None)]`` from the ``users`` option; raises ``ValueError`` naming the bad element."""
    parsed = []
    for index, entry in enumerate(users or []):
        if isinstance(entry, string_types):
            user, server = entry, server_default
        elif isinstance(entry, dict) and set(entry) <= set(["name", "server"]) and "name" in entry:
            user, server = entry["name"], entry.get("server", server_default)
        else:
            raise ValueError("users[%d]: expected a user name or a dict with 'name' and optional 'server', got %r" % (index, entry))
        if not isinstance(user, string_types) or not user:
            raise ValueError("users[%d]: the user name must be a non-empty string, got %r" % (index, user))
        if server is not None and not isinstance(server, string_types):
            raise ValueError("users[%d]: server must be a string, got %r" % (index, server))
        parsed.append((user, server))
    return parsed


def usage_by_user(volumes):
    """Per user, the bytes their ``volumes`` (report entries) hold, largest first (None if any is unknown)."""
    users = {}
    for entry in volumes:
        user = users.setdefault(entry.get("user"), {"user": entry.get("user"), "size": 0, "volumes": []})
        user["volumes"].append(entry["name"])
        size = entry.get("size")
        user["size"] = None if size is None or user["size"] is None else user["size"] + size
    return sorted(users.values(), key=lambda u: (-(u["size"] or 0), u["user"] or ""))


def over_limit(usage, limit):
    """The entries of ``usage`` holding more than ``limit`` bytes, with the limit."""
    return [dict(entry, limit=limit) for entry in usage if entry["size"] is not None and entry["size"] > limit]


class UserVolumesManager(object):
    """Plans and applies one run over the hub's user volumes; every step honours check mode."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.hub = self.params["hub"]
        self.check_mode = module.check_mode
        self.actions = []
        self.created = []
        self.removed = []
        self.backups = []

    # -- reading --

    def get(self):
        """``{name: labels}`` of every user volume of this hub."""
        volumes = self.client.volumes(filters={"label": label_filters(hub=self.hub, kind=KIND_USER_VOLUME)})
        return dict((volume["Name"], volume.get("Labels") or {}) for volume in volumes.get("Volumes") or [])

    def sizes(self):
        """``{name: bytes}`` from the engine's disk usage report (None where unknown)."""
        usage = {}
        for volume in self.client.df().get("Volumes") or []:
            size = (volume.get("UsageData") or {}).get("Size")
            usage[volume["Name"]] = size if size is not None and size >= 0 else None
        return usage

    def selected(self, volumes, wanted_users):
        """Names of ``volumes`` whose labels match one of ``wanted_users`` (all when None)."""
        if wanted_users is None:
            return sorted(volumes)
        return sorted(
            name for name, labels in volumes.items()
            if any(matches(labels, user=user, server=server) for user, server in wanted_users)
        )

    def report(self, names):
        sizes = self.sizes()
        current = self.get()
        report = []
        for name in names:
            if name not in current:
                continue
            containers = containers_using_volume(self.client, name)
            report.append({
                "name": name,
                "user": current[name].get(LABEL_USER),
                "server": current[name].get(LABEL_SERVER),
                "hub": self.hub,
                "size": sizes.get(name),
                "mounted": bool(containers),
                "containers": containers,
            })
        return report

    # -- planning --

    def planned_volumes(self, users):
        """``{volume name: labels}`` for ``users`` (present), rendered by the shared naming code."""
        template = self.params["template"]
        server_scoped = "servername}" in template
        planned = {}
        for user, server in users:
            try:
                name = volume_name(template, template_names(user, server or "", prefix=self.params["prefix"]))
            except UnsafeNameError as exc:
                self.module.fail_json(msg="users: cannot name a volume for user %r: %s" % (user, exc))
            labels = stringify_options(self.params["labels"])
            labels.update(object_labels(self.hub, KIND_USER_VOLUME, user=user, server=(server or "") if server_scoped else ""))
            if name in planned and planned[name] != labels:
                self.module.fail_json(
                    msg="users: %s and another entry both map to volume %s with different labels; "
                    "add {servername} to template for per-server volumes." % (user, name)
                )
            planned[name] = labels
        return planned

    def validate_backup(self):
        if not self.params["backup_dir"]:
            return
        if not os.path.isdir(self.params["backup_dir"]) or not os.access(self.params["backup_dir"], os.W_OK):
            self.module.fail_json(msg="backup_dir: %s is not a writable directory." % self.params["backup_dir"])
        try:
            check_image_present(self.client, self.params["image"])
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))

    # -- acting --

    def create(self, planned, existing):
        for name, labels in sorted(planned.items()):
            if name in existing:
                continue
            try:
                found = self.client.inspect_volume(name)
            except DOCKER_ERRORS:
                found = None
            if found:
                # A volume of that name without our labels (made by hand or by an older setup): keep it as is.
                if (found.get("Labels") or {}).get(LABEL_USER) not in (None, labels[LABEL_USER]):
                    self.module.fail_json(msg="users: volume %s already belongs to user %r." % (name, found["Labels"][LABEL_USER]))
                self.module.warn("Volume %s exists without Hubfleet labels for hub %s; left as it is." % (name, self.hub))
                continue
            self.actions.append("create volume %s" % name)
            self.created.append(name)
            if not self.check_mode:
                self.client.create_volume(name, driver=self.params["driver"], labels=labels)

    def backup(self, names):
        directory = self.params["backup_dir"]
        for name in names:
            path = os.path.join(directory, "%s.tar.gz" % name)
            if name in self.created and self.check_mode:
                changed = True
            else:
                with VolumeArchiver(self.client, name, self.params["image"], labels={"hubfleet.helper-for": name}) as archiver:
                    if self.check_mode:
                        try:
                            changed = not os.path.isfile(path) or archive_manifest(path) != archiver.manifest()
                        except (tarfile.TarError, OSError, EOFError):
                            changed = True
                    else:
                        try:
                            changed = archiver.backup(path)[0]
                        except OSError as exc:
                            self.module.fail_json(msg="backup: cannot write %s: %s" % (path, exc))
            if changed:
                self.actions.append("back up %s to %s" % (name, path))
            self.backups.append({"volume": name, "path": path, "changed": changed})

    def refuse_mounted(self, names):
        """Fail, before anything changed, if a container mounts any of ``names``."""
        mounted = dict((name, containers_using_volume(self.client, name)) for name in names)
        mounted = dict((name, users) for name, users in mounted.items() if users)
        if mounted:
            self.module.fail_json(
                msg="Refusing to remove user volumes that containers mount: %s. Nothing was removed."
                % "; ".join("%s (by %s)" % (name, ", ".join(users)) for name, users in sorted(mounted.items())),
                mounted=mounted,
            )

    def remove(self, names):
        for name in names:
            self.actions.append("remove volume %s" % name)
            self.removed.append(name)
            if not self.check_mode:
                self.client.remove_volume(name)

    def run(self):
        state = self.params["state"]
        try:
            users = parse_users(self.params["users"], "" if state == "present" else None)
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))
        if state in ("present", "absent") and not users:
            self.module.fail_json(msg="users: at least one user is required with state=%s." % state)
        if state == "absent" and not self.params["confirm"]:
            self.module.fail_json(msg="confirm: set confirm: true to remove user volumes (state=absent).")
        self.size_limit = None
        if self.params["size_limit"] not in (None, ""):
            try:
                self.size_limit = human_to_bytes(self.params["size_limit"])
            except ValueError as exc:
                self.module.fail_json(msg="size_limit: %r is not a size (e.g. 5G, 500M, 1048576): %s"
                                      % (self.params["size_limit"], exc))
        self.validate_backup()

        existing = self.get()
        if state == "present":
            planned = self.planned_volumes(users)
            names = sorted(planned)
        else:
            names = self.selected(existing, users or None)
        before = self.report(names)
        if state == "absent":
            self.refuse_mounted(names)
        if state == "present":
            self.create(planned, existing)
        if self.params["backup_dir"]:
            self.backup([name for name in names if name in existing or name in self.created])
        if state == "absent":
            self.remove(names)

        after = self.report(names) if not self.check_mode else [
            entry for entry in before if entry["name"] not in self.removed
        ] + [{"name": name, "hub": self.hub} for name in self.created]
        result = dict(
            changed=bool(self.actions), actions=self.actions, created=self.created, removed=self.removed,
            volumes=sorted(after, key=lambda entry: entry["name"]),
        )
        if self.params["backup_dir"]:
            result["backups"] = self.backups
        result["usage"] = usage_by_user(result["volumes"])
        if self.size_limit is not None:
            result["over_limit"] = over_limit(result["usage"], self.size_limit)
        if self.module._diff:
            result["diff"] = make_diff(
                {"volumes": sorted(entry["name"] for entry in before)},
                {"volumes": sorted(entry["name"] for entry in result["volumes"])},
                "user volumes of hub %s" % self.hub, "user volumes of hub %s" % self.hub,
            )
        return result


def main():
    argument_spec = docker_argument_spec()
    argument_spec.update(
        state=dict(type="str", default="present", choices=["present", "absent", "query"]),
        users=dict(type="list", elements="raw"),
        hub=dict(type="str", default=DEFAULT_HUB),
        prefix=dict(type="str", default=DEFAULT_PREFIX),
        template=dict(type="str", default=DEFAULT_USER_VOLUME_TEMPLATE),
        driver=dict(type="str", default="local"),
        labels=dict(type="dict", default={}),
        backup_dir=dict(type="path"),
        image=dict(type="str"),
        confirm=dict(type="bool", default=False),
        size_limit=dict(type="str"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_by={"backup_dir": "image"},
    )
    client = connect(module)
    try:
        module.exit_json(**UserVolumesManager(module, client).run())
    except DOCKER_ERRORS as exc:
        module.fail_json(msg="Docker error on user volumes: %s" % docker_error_message(exc))


if __name__ == "__main__":
    main()
