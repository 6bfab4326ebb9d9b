#!/usr/bin/python
# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: hub_network
short_description: The Docker network that connects JupyterHub, its proxy and the user servers
version_added: 0.1.0
description:
  - Creates, checks and removes a bridge network (single Docker host) or an overlay network (Docker Swarm).
  - Docker cannot change a network's options in place. A difference fails with the difference shown,
    unless O(recreate=true).
  - A network that containers or swarm services use is never removed or recreated unless O(force=true);
    then its containers are disconnected first (and connected again after a recreate, with their aliases).
    A network that swarm services use is always refused; update or remove those services first.
author:
  - Hubfleet contributors (@hubfleet)
extends_documentation_fragment:
  - hubfleet.jupyterhub.docker
  - hubfleet.jupyterhub.attributes
attributes:
  diff_mode:
    details: Shows the network's options before and after.
options:
  name:
    description: Name of the network.
    type: str
    required: true
  state:
    description: V(present) creates the network if needed; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  driver:
    description:
      - V(bridge) for one Docker host, V(overlay) for a swarm (the target must be a swarm manager).
      - V(auto) picks V(overlay) when the target is a swarm manager, else V(bridge).
    type: str
    choices: [auto, bridge, overlay]
    default: auto
  attachable:
    description:
      - Whether standalone containers (such as the hub) may attach to an overlay network. Only for V(overlay).
      - Not compared when not given.
    type: bool
  internal:
    description:
      - Whether the network is cut off from outside networks. Not compared when not given.
    type: bool
  encrypted:
    description:
      - Encrypt traffic between swarm nodes (IPsec). Only for V(overlay). Not compared when not given.
    type: bool
  subnet:
    description: Subnet in CIDR notation, for example V(172.30.0.0/24). Not compared when not given.
    type: str
  gateway:
    description: Gateway address inside O(subnet). Requires O(subnet). Not compared when not given.
    type: str
  ip_range:
    description: Range inside O(subnet) from which containers get addresses. Requires O(subnet).
    type: str
  driver_options:
    description: Driver options. Only the options given are compared.
    type: dict
    default: {}
  labels:
    description: Labels of the network. Only the labels given are compared; extra labels are kept.
    type: dict
    default: {}
  recreate:
    description: When the existing network differs from the options given, remove it and create it anew.
    type: bool
    default: false
  force:
    description:
      - Allow removing or recreating a network that containers use, disconnecting them first.
    type: bool
    default: false
seealso:
  - module: hubfleet.jupyterhub.swarm_placement
"""

EXAMPLES = r"""
- name: A bridge network on a single Docker host
  hubfleet.jupyterhub.hub_network:
    name: jupyterhub
    driver: bridge
    subnet: 172.30.0.0/24
    labels:
      hubfleet.hub: jupyterhub

- name: An attachable overlay network on a swarm manager
  hubfleet.jupyterhub.hub_network:
    name: jupyterhub
    driver: overlay
    attachable: true
    encrypted: true

- name: Change the subnet of a network in use (containers are disconnected and connected again)
  hubfleet.jupyterhub.hub_network:
    name: jupyterhub
    driver: bridge
    subnet: 172.31.0.0/24
    recreate: true
    force: true
"""

RETURN = r"""
network:
  description: The network's id, name, driver, scope, subnet, gateway and options; empty after removal.
  returned: success
  type: dict
  sample:
    id: 3f2c0e8d9b1a
    name: jupyterhub
    driver: bridge
    scope: local
    subnet: 172.30.0.0/24
    gateway: 172.30.0.1
    ip_range: null
    attachable: false
    internal: false
    encrypted: false
    driver_options: {}
    labels: {hubfleet.hub: jupyterhub}
actions:
  description: What was done (or would be done in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["create network jupyterhub"]
differences:
  description: Options that differed from the existing network (and were fixed by recreating it).
  returned: success
  type: dict
  sample: {"subnet": {"wanted": "172.31.0.0/24", "actual": "172.30.0.0/24"}}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.docker_common import (
    DOCKER_ERRORS,
    HAS_DOCKER,
    connect,
    docker_argument_spec,
    docker_error_message,
    format_differences,
    label_differences,
    make_diff,
    option_differences,
    stringify_options,
)

if HAS_DOCKER:
    from docker.types import IPAMConfig, IPAMPool

# Encryption is a driver option as Docker stores it; the module shows it as its own option.
ENCRYPTED_OPTION = "encrypted"

# A new overlay network is in swarm's store at once, but its driver and address pool are filled
# in by the swarm allocator a moment later; until then inspect shows an empty driver.
ALLOCATION_TIMEOUT = 30


def describe(network):
    """The options this module manages, from ``inspect_network`` data ({} for none)."""
    if not network:
        return {}
    ipam = (network.get("IPAM") or {}).get("Config") or [{}]
    options = dict(network.get("Options") or {})
    encrypted = ENCRYPTED_OPTION in options
    options.pop(ENCRYPTED_OPTION, None)
    return {
        "id": network["Id"],
        "name": network["Name"],
        "driver": network["Driver"],
        "scope": network.get("Scope"),
        "subnet": ipam[0].get("Subnet"),
        "gateway": ipam[0].get("Gateway"),
        "ip_range": ipam[0].get("IPRange"),
        "attachable": bool(network.get("Attachable")),
        "internal": bool(network.get("Internal")),
        "encrypted": encrypted,
        "driver_options": options,
        "labels": network.get("Labels") or {},
    }


class HubNetworkManager(object):
    """Brings one network to the wanted state; every step honours check mode."""

    COMPARED = ("driver", "attachable", "internal", "encrypted", "subnet", "gateway", "ip_range")

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.name = self.params["name"]
        self.check_mode = module.check_mode
        self.actions = []
        self.differences = {}
        self.existing = self.get()
        self.before = self.comparable(describe(self.existing))

    def get(self):
        """The network's inspect data (matched by exact name), or None."""
        for network in self.client.networks(names=[self.name]):
            if network["Name"] == self.name:
                return self.inspect(network["Id"])
        return None

    def inspect(self, network_id):
        """Inspect data of a network, once swarm has allocated it (driver and addresses known)."""
        deadline = time.monotonic() + ALLOCATION_TIMEOUT
        while True:
            network = self.client.inspect_network(network_id)
            if network.get("Driver") or network.get("Scope") != "swarm":
                return network
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg="Network %s: swarm has not allocated it after %d s (inspect shows no driver yet); "
                    "check the managers with 'docker node ls'." % (self.name, ALLOCATION_TIMEOUT)
                )
            time.sleep(0.2)

    def swarm_manager(self):
        return bool((self.client.info().get("Swarm") or {}).get("ControlAvailable"))

    def resolve_driver(self):
        driver = self.params["driver"]
        is_manager = self.swarm_manager()
        if driver == "auto":
            return "overlay" if is_manager else "bridge"
        if driver == "overlay" and not is_manager:
            self.module.fail_json(msg="driver: overlay needs the target to be a swarm manager (docker info shows no swarm control).")
        return driver

    def wanted(self):
        params = self.params
        return {
            "name": self.name,
            "driver": self.driver,
            "attachable": params["attachable"],
            "internal": params["internal"],
            "encrypted": params["encrypted"],
            "subnet": params["subnet"],
            "gateway": params["gateway"],
            "ip_range": params["ip_range"],
            "driver_options": stringify_options(params["driver_options"]),
            "labels": stringify_options(params["labels"]),
        }

    @staticmethod
    def comparable(described):
        """``describe`` without the fields Docker assigns (id, scope) — for diffs."""
        return dict((key, value) for key, value in described.items() if key not in ("id", "scope"))

    def validate(self):
        params = self.params
        self.driver = self.resolve_driver()
        if self.driver != "overlay":
            for option in ("attachable", "encrypted"):
                if params[option]:
                    self.module.fail_json(msg="%s: only an overlay network can be %s (driver is %s)." % (option, option, self.driver))
        for option in ("gateway", "ip_range"):
            if params[option] and not params["subnet"]:
                self.module.fail_json(msg="%s needs subnet to be given too." % option)
        if ENCRYPTED_OPTION in (params["driver_options"] or {}):
            self.module.fail_json(msg="driver_options: use the encrypted option instead of the '%s' driver option." % ENCRYPTED_OPTION)

    def compute_differences(self):
        wanted = self.wanted()
        actual = describe(self.existing)
        differences = option_differences(dict((key, wanted[key]) for key in self.COMPARED), actual)
        differences.update(option_differences({"driver_options": wanted["driver_options"] or None}, actual))
        differences.update(label_differences(wanted["labels"], actual["labels"]))
        return differences

    def users(self):
        """(containers, services) that use the network."""
        containers = sorted(
            (container_id, info.get("Name") or container_id[:12])
            for container_id, info in (self.existing.get("Containers") or {}).items()
            # Swarm's load-balancer endpoints ("lb-<network>") are not containers.
            if not container_id.startswith("lb-")
        )
        services = []
        if self.existing.get("Scope") == "swarm" and self.swarm_manager():
            for service in self.client.services():
                targets = (service["Spec"].get("TaskTemplate") or {}).get("Networks") or []
                if any(target.get("Target") in (self.existing["Id"], self.name) for target in targets):
                    services.append(service["Spec"]["Name"])
        return containers, sorted(services)

    def refuse_if_used(self, why):
        containers, services = self.users()
        if services:
            self.module.fail_json(
                msg="Network %s is used by swarm service(s) %s; refusing to %s it (force does not remove services)."
                % (self.name, ", ".join(services), why),
                services=services,
            )
        if containers and not self.params["force"]:
            names = [name for dummy_id, name in containers]
            self.module.fail_json(
                msg="Network %s is used by container(s) %s; refusing to %s it. Set force: true to disconnect them first."
                % (self.name, ", ".join(names), why),
                containers=names,
            )
        return containers

    def create(self):
        self.actions.append("create network %s" % self.name)
        if self.check_mode:
            return
        wanted = self.wanted()
        options = dict(wanted["driver_options"] or {})
        if wanted["encrypted"]:
            options[ENCRYPTED_OPTION] = ""
        ipam = None
        if wanted["subnet"]:
            ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=wanted["subnet"], gateway=wanted["gateway"], iprange=wanted["ip_range"])])
        created = self.client.create_network(
            self.name, driver=self.driver, options=options or None, ipam=ipam, check_duplicate=True,
            internal=bool(wanted["internal"]), labels=wanted["labels"] or None,
            attachable=bool(wanted["attachable"]) if self.driver == "overlay" else None,
        )
        self.existing = self.inspect(created["Id"])

    def disconnect(self, containers):
        """Disconnect ``containers``; returns what is needed to connect them again."""
        connections = []
        for container_id, name in containers:
            self.actions.append("disconnect container %s" % name)
            aliases = None
            if not self.check_mode:
                settings = self.client.inspect_container(container_id)["NetworkSettings"]["Networks"].get(self.name) or {}
                aliases = [alias for alias in settings.get("Aliases") or [] if not container_id.startswith(alias)]
                self.client.disconnect_container_from_network(container_id, self.existing["Id"], force=True)
            connections.append((container_id, name, aliases))
        return connections

    def remove(self):
        self.actions.append("remove network %s" % self.name)
        if not self.check_mode:
            self.client.remove_network(self.existing["Id"])

    def present(self):
        if not self.existing:
            self.create()
            return
        self.differences = self.compute_differences()
        if not self.differences:
            return
        if not self.params["recreate"]:
            self.module.fail_json(
                msg="Network %s differs in what Docker cannot change in place: %s. Set recreate: true to remove it "
                "and create it anew." % (self.name, format_differences(self.differences)),
                differences=self.differences,
            )
        containers = self.refuse_if_used("recreate")
        connections = self.disconnect(containers)
        self.remove()
        self.create()
        for container_id, name, aliases in connections:
            self.actions.append("connect container %s" % name)
            if not self.check_mode:
                self.client.connect_container_to_network(container_id, self.existing["Id"], aliases=aliases or None)

    def absent(self):
        if not self.existing:
            return
        containers = self.refuse_if_used("remove")
        self.disconnect(containers)
        self.remove()
        self.existing = None

    def run(self):
        if self.params["state"] == "present":
            self.validate()
            self.present()
        else:
            self.absent()
        if self.check_mode and self.actions:
            after = {} if self.params["state"] == "absent" else dict(
                (key, value) for key, value in self.wanted().items() if value is not None
            )
            network = {}
        else:
            network = describe(self.existing)
            after = self.comparable(network)
        result = dict(changed=bool(self.actions), actions=self.actions, network=network, differences=self.differences)
        if self.module._diff:
            result["diff"] = make_diff(self.before, after, "network %s" % self.name, "network %s" % self.name)
        return result


def main():
    argument_spec = docker_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        driver=dict(type="str", default="auto", choices=["auto", "bridge", "overlay"]),
        attachable=dict(type="bool"),
        internal=dict(type="bool"),
        encrypted=dict(type="bool"),
        subnet=dict(type="str"),
        gateway=dict(type="str"),
        ip_range=dict(type="str"),
        driver_options=dict(type="dict", default={}),
        labels=dict(type="dict", default={}),
        recreate=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = connect(module)
    try:
        module.exit_json(**HubNetworkManager(module, client).run())
    except DOCKER_ERRORS as exc:
        module.fail_json(msg="Docker error on network %s: %s" % (module.params["name"], docker_error_message(exc)))


if __name__ == "__main__":
    main()
