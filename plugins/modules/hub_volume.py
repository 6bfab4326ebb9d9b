#!/usr/bin/python
# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: hub_volume
short_description: A named Docker volume for JupyterHub, with backup and restore
version_added: 0.1.0
description:
  - Creates, checks and removes a named Docker volume such as the hub's data volume
    (user database, cookie secret).
  - A difference in O(driver), O(driver_options) or O(labels) cannot be changed in place by Docker;
    the module fails showing the difference unless O(recreate=true), which removes the volume and its data.
  - A volume that a container mounts is never removed unless O(force=true).
  - O(backup) writes the volume's contents to a C(tar.gz) file on the host running the module,
    keeping owners, modes and times; O(restore) fills the volume from such a file.
  - Backup and restore copy through the Docker archive API (as C(docker cp) does) of a helper container that
    mounts the volume and is created but never started. The helper O(image) must already be on the engine
    (nothing is pulled) but needs no programs at all, and the daemon may be remote.
author:
  - Hubfleet contributors (@hubfleet)
extends_documentation_fragment:
  - hubfleet.jupyterhub.docker
  - hubfleet.jupyterhub.attributes
attributes:
  diff_mode:
    details: Shows the volume before and after.
options:
  name:
    description: Name of the volume.
    type: str
    required: true
  state:
    description:
      - V(present) creates the volume if needed; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  driver:
    description: Volume driver.
    type: str
    default: local
  driver_options:
    description:
      - Driver options, for example C(type), C(device) and C(o) of the C(local) driver.
      - Only the options given are compared with an existing volume.
    type: dict
    default: {}
  labels:
    description:
      - Labels of the volume. Only the labels given are compared; extra labels on the volume are kept.
    type: dict
    default: {}
  recreate:
    description:
      - When the existing volume differs in O(driver), O(driver_options) or O(labels), remove it and create
        it anew. B(Its contents are lost) (take a O(backup) in the same task to keep them).
    type: bool
    default: false
  force:
    description:
      - Allow removing (O(state=absent) or O(recreate=true)) a volume that containers mount;
        those containers are stopped and removed first.
      - Allow O(restore) into a volume that is not empty; files from the archive overwrite
        files of the same name, other files stay.
    type: bool
    default: false
  backup:
    description:
      - Path of a C(tar.gz) file to write with the volume's contents (mode C(0600); its directory must exist).
      - An existing file with the same contents is left alone (no change).
      - With O(state=absent) the backup is taken before the volume is removed.
    type: path
  restore:
    description:
      - Path of a C(tar.gz) file (as written by O(backup)) to unpack into the volume.
      - Refused when the volume is not empty, unless O(force=true). When the volume already holds every entry
        of the archive unchanged, nothing is done.
      - Done before O(backup) when both are given. Not allowed with O(state=absent).
    type: path
  image:
    description:
      - An image already present on the engine to create the never-started helper container from.
        Any image works; it is not pulled.
      - Required with O(backup) or O(restore).
    type: str
notes:
  - Backups hold user data; they are written with mode C(0600).
seealso:
  - module: hubfleet.jupyterhub.user_volumes
"""

EXAMPLES = r"""
- name: The hub's data volume
  hubfleet.jupyterhub.hub_volume:
    name: jupyterhub-data
    labels:
      hubfleet.hub: jupyterhub
      hubfleet.kind: hub-data

- name: Back the hub's data up before an upgrade
  hubfleet.jupyterhub.hub_volume:
    name: jupyterhub-data
    backup: /var/backups/jupyterhub-data.tar.gz
    image: hubfleet/debian-base:latest

- name: Restore it on a new host
  hubfleet.jupyterhub.hub_volume:
    name: jupyterhub-data
    restore: /var/backups/jupyterhub-data.tar.gz
    image: hubfleet/debian-base:latest

- name: Remove it, even though a stopped hub container still mounts it
  hubfleet.jupyterhub.hub_volume:
    name: jupyterhub-data
    state: absent
    force: true
"""

RETURN = r"""
volume:
  description: The volume as C(docker volume inspect) shows it; empty after removal.
  returned: success
  type: dict
  sample: {"Name": "jupyterhub-data", "Driver": "local", "Labels": {"hubfleet.kind": "hub-data"}, "Options": {}}
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["create volume jupyterhub-data", "back up to /var/backups/jupyterhub-data.tar.gz"]
removed_containers:
  description: Containers removed because they mounted the volume and O(force=true).
  returned: success
  type: list
  elements: str
  sample: []
backup:
  description: The backup file and whether it was (re)written.
  returned: when O(backup) is given
  type: dict
  sample: {"path": "/var/backups/jupyterhub-data.tar.gz", "changed": true, "entries": 3}
restore:
  description: The archive restored and whether anything was unpacked.
  returned: when O(restore) is given
  type: dict
  sample: {"path": "/var/backups/jupyterhub-data.tar.gz", "changed": true, "entries": 3}
"""

import os
import tarfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.docker_common import (
    DOCKER_ERRORS,
    connect,
    docker_argument_spec,
    docker_error_message,
    format_differences,
    label_differences,
    make_diff,
    option_differences,
    stringify_options,
)
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.volume_tools import (
    VolumeArchiver,
    archive_manifest,
    check_image_present,
    containers_using_volume,
    manifest_contains,
)


class HubVolumeManager(object):
    """Brings one named volume to the wanted state; every step honours check mode."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.name = self.params["name"]
        self.check_mode = module.check_mode
        self.actions = []
        self.removed_containers = []
        self.result = {}
        self.existing = self.get()
        self.before = self.describe(self.existing)

    def get(self):
        """The volume's inspect data, or None."""
        for volume in self.client.volumes(filters={"name": self.name}).get("Volumes") or []:
            if volume["Name"] == self.name:
                return self.client.inspect_volume(self.name)
        return None

    @staticmethod
    def describe(volume):
        if not volume:
            return {}
        return {
            "name": volume["Name"],
            "driver": volume.get("Driver"),
            "driver_options": volume.get("Options") or {},
            "labels": volume.get("Labels") or {},
        }

    def wanted(self):
        return {
            "name": self.name,
            "driver": self.params["driver"],
            "driver_options": stringify_options(self.params["driver_options"]),
            "labels": stringify_options(self.params["labels"]),
        }

    def differences(self):
        """Options Docker cannot change on the existing volume."""
        wanted = self.wanted()
        actual = self.describe(self.existing)
        differences = option_differences(
            {"driver": wanted["driver"], "driver_options": wanted["driver_options"] or None}, actual
        )
        differences.update(label_differences(wanted["labels"], actual["labels"]))
        return differences

    # -- validation: everything that can fail does so before anything changes --

    def validate(self):
        params = self.params
        if params["state"] == "absent" and params["restore"]:
            self.module.fail_json(msg="restore cannot be used with state=absent.")
        if params["backup"] or params["restore"]:
            try:
                check_image_present(self.client, params["image"])
            except ValueError as exc:
                self.module.fail_json(msg=str(exc))
        if params["backup"]:
            directory = os.path.dirname(os.path.abspath(params["backup"]))
            if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
                self.module.fail_json(msg="backup: directory %s does not exist or is not writable." % directory)
            if params["restore"] and os.path.abspath(params["restore"]) == os.path.abspath(params["backup"]):
                self.module.fail_json(msg="backup and restore must be different files.")
        if params["restore"]:
            if not os.path.isfile(params["restore"]):
                self.module.fail_json(msg="restore: file %s does not exist." % params["restore"])
            try:
                self.restore_manifest = archive_manifest(params["restore"])
            except (tarfile.TarError, OSError, EOFError) as exc:
                self.module.fail_json(msg="restore: %s is not a readable tar archive: %s" % (params["restore"], exc))

    def refuse_if_mounted(self, why):
        users = containers_using_volume(self.client, self.name)
        if users and not self.params["force"]:
            self.module.fail_json(
                msg="Volume %s is mounted by container(s) %s; refusing to %s it. Set force: true to remove "
                "those containers and go ahead." % (self.name, ", ".join(users), why),
                containers=users,
            )
        return users

    # -- actions --

    def create(self):
        self.actions.append("create volume %s" % self.name)
        if not self.check_mode:
            wanted = self.wanted()
            self.client.create_volume(
                self.name, driver=wanted["driver"], driver_opts=wanted["driver_options"] or None,
                labels=wanted["labels"] or None,
            )
            self.existing = self.get()

    def remove(self, users):
        for container in users:
            self.actions.append("remove container %s (it mounts the volume)" % container)
            self.removed_containers.append(container)
            if not self.check_mode:
                self.client.remove_container(container, force=True)
        self.actions.append("remove volume %s" % self.name)
        if not self.check_mode:
            self.client.remove_volume(self.name)
        self.existing = None

    def archiver(self):
        return VolumeArchiver(self.client, self.name, self.params["image"], labels={"hubfleet.helper-for": self.name})

    def restore(self, volume_is_new):
        path = self.params["restore"]
        entries = len(self.restore_manifest)
        if not volume_is_new and self.existing:
            with self.archiver() as archiver:
                if manifest_contains(archiver.manifest(), self.restore_manifest):
                    self.result["restore"] = {"path": path, "changed": False, "entries": entries}
                    return
                if not archiver.is_empty() and not self.params["force"]:
                    self.module.fail_json(
                        msg="restore: volume %s is not empty and differs from %s; refusing to overwrite it. "
                        "Set force: true to unpack the archive over its contents." % (self.name, path),
                        **self.result_dict()
                    )
                self.actions.append("restore from %s" % path)
                if not self.check_mode:
                    archiver.restore(path)
        else:
            self.actions.append("restore from %s" % path)
            if not self.check_mode:
                with self.archiver() as archiver:
                    archiver.restore(path)
        self.result["restore"] = {"path": path, "changed": True, "entries": entries}

    def backup(self):
        path = self.params["backup"]
        if not self.existing:
            # Only in check mode: the volume would be created (empty) first.
            self.actions.append("back up to %s" % path)
            self.result["backup"] = {"path": path, "changed": True, "entries": 1}
            return
        with self.archiver() as archiver:
            if self.check_mode:
                manifest = archiver.manifest()
                try:
                    changed = not os.path.isfile(path) or archive_manifest(path) != manifest
                except (tarfile.TarError, OSError, EOFError):
                    changed = True
            else:
                try:
                    changed, manifest = archiver.backup(path)
                except OSError as exc:
                    self.module.fail_json(msg="backup: cannot write %s: %s" % (path, exc), **self.result_dict())
        if changed:
            self.actions.append("back up to %s" % path)
        self.result["backup"] = {"path": path, "changed": changed, "entries": len(manifest)}

    # -- states --

    def present(self):
        volume_is_new = False
        if self.existing:
            differences = self.differences()
            if differences:
                if not self.params["recreate"]:
                    self.module.fail_json(
                        msg="Volume %s differs in what Docker cannot change in place: %s. Set recreate: true to "
                        "remove it and create it anew (its contents are lost)." % (self.name, format_differences(differences)),
                        differences=differences,
                    )
                users = self.refuse_if_mounted("recreate")
                self.remove(users)
                self.create()
                volume_is_new = True
        else:
            self.create()
            volume_is_new = True
        if self.params["restore"]:
            self.restore(volume_is_new)
        if self.params["backup"]:
            self.backup()

    def absent(self):
        if not self.existing:
            return
        users = self.refuse_if_mounted("remove")
        if self.params["backup"]:
            self.backup()
        self.remove(users)

    def result_dict(self):
        if not self.actions:
            after = dict(self.before)
        elif self.check_mode:
            after = self.wanted() if self.params["state"] == "present" else {}
        else:
            after = self.describe(self.existing)
        for key in ("restore", "backup"):
            if self.result.get(key, {}).get("changed"):
                after = dict(after, **{key: self.params[key]})
        result = dict(
            changed=bool(self.actions),
            actions=self.actions,
            removed_containers=self.removed_containers,
            volume=self.existing or {},
        )
        result.update(self.result)
        if self.module._diff:
            result["diff"] = make_diff(self.before, after, "volume %s" % self.name, "volume %s" % self.name)
        return result

    def run(self):
        self.validate()
        if self.params["state"] == "present":
            self.present()
        else:
            self.absent()
        return self.result_dict()


def main():
    argument_spec = docker_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        driver=dict(type="str", default="local"),
        driver_options=dict(type="dict", default={}),
        labels=dict(type="dict", default={}),
        recreate=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        backup=dict(type="path"),
        restore=dict(type="path"),
        image=dict(type="str"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_by={"backup": "image", "restore": "image"},
    )
    client = connect(module)
    try:
        module.exit_json(**HubVolumeManager(module, client).run())
    except DOCKER_ERRORS as exc:
        module.fail_json(msg="Docker error on volume %s: %s" % (module.params["name"], docker_error_message(exc)))


if __name__ == "__main__":
    main()
