#!/usr/bin/python
# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: hub_firewall
short_description: Isolate the user servers of one hub's bridge network with iptables rules
version_added: 0.2.0
description:
  - Manages two iptables chains for one hub's Docker bridge network, scoped to that network's bridge
    interface so other containers on the host are unaffected.
  - Forwarded traffic from the bridge (C(DOCKER-USER) jumps to the first chain) may reach the hub's API port,
    DNS, the public internet and the O(allowlist); it is rejected towards other containers on the same
    bridge (user servers reach each other through C(FORWARD) because C(br_netfilter) is on), and towards
    C(10.0.0.0/8), C(172.16.0.0/12), C(192.168.0.0/16), C(100.64.0.0/10) and C(169.254.0.0/16)
    (which holds the cloud metadata address C(169.254.169.254)).
  - Traffic from the bridge to the host's own addresses (C(INPUT) jumps to the second chain), such as the
    bridge gateway and published ports, is rejected except replies, DNS and O(host_ports).
  - The hub container (O(hub_container)) is exempt and still reaches every user server.
  - Works with iptables-nft and iptables-legacy as long as C(iptables) on the host is the variant dockerd
    uses (the one that holds its C(DOCKER-USER) chain); otherwise the module refuses and says which.
  - IPv4 only. A network with IPv6 enabled is refused (Docker turns IPv6 off inside the containers of a network
    without it, so those have no IPv6 path to each other).
  - Swarm overlay networks are refused. Their traffic between nodes crosses no bridge of the host; the jupyterhub
    role's C(fleet_firewall.yml) isolates their user servers instead, with rules in each server's own network
    namespace (C(hubfleet-firewall watch) on every node).
  - Refuses to apply rules when C(net.bridge.bridge-nf-call-iptables) is not 1, because then traffic
    between two containers on the same bridge never passes iptables.
  - The rules live in the kernel, so a host reboot loses them. The jupyterhub role also installs
    C(hubfleet-firewall), which computes the same rules again after every start of the engine (see
    the role's C(firewall_boot.yml)); without it they come back with the next run of this module.
author:
  - Hubfleet contributors (@hubfleet)
extends_documentation_fragment:
  - hubfleet.jupyterhub.docker
  - hubfleet.jupyterhub.attributes
attributes:
  diff_mode:
    details: Shows the chains' rules before and after.
requirements:
  - iptables (nf_tables or legacy variant) on the Docker host, run as root
options:
  network:
    description: Name of the hub's Docker bridge network (the one its user servers are attached to).
    type: str
    required: true
  state:
    description: V(present) applies the rules; V(absent) removes both chains and their jumps.
    type: str
    choices: [present, absent]
    default: present
  hub_container:
    description:
      - Name or id of the hub container on O(network). Its address is exempt from the rules and is the
        only one user servers reach on O(hub_api_port).
      - Not needed when the hub runs on the host itself (use O(host_ports) then).
    type: str
  hub_api_port:
    description: TCP port of the hub's API inside the hub container.
    type: int
    default: 8081
  host_ports:
    description: TCP ports on the host's own addresses that user servers may reach (a hub process on the host).
    type: list
    elements: int
    default: []
  allowlist:
    description:
      - Destinations user servers may reach although they are private, as V(CIDR) or V(CIDR:port)
        (TCP and UDP), for example V(10.20.0.5/32:27000) for a licence server.
      - A bare address means /32. Host bits must be zero (V(10.0.0.0/24), not V(10.0.0.5/24)).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Isolate the user servers of the hub network
  hubfleet.jupyterhub.hub_firewall:
    network: jupyterhub
    hub_container: jupyterhub-hub
    allowlist:
      - 10.20.0.5/32:27000      # licence server
      - 192.168.50.0/24         # package mirror subnet

- name: A hub process on the host listening on the bridge gateway, port 8081
  hubfleet.jupyterhub.hub_firewall:
    network: jupyterhub
    host_ports: [8081]

- name: Remove the rules
  hubfleet.jupyterhub.hub_firewall:
    network: jupyterhub
    state: absent
"""

RETURN = r"""
backend:
  description: The iptables variant found (V(nf_tables) or V(legacy)).
  returned: success
  type: str
  sample: nf_tables
interface:
  description: The bridge interface of O(network); empty when the network does not exist.
  returned: success
  type: str
  sample: br-3f2c0e8d9b1a
chains:
  description: The rules of both chains and the jumps to them, as C(iptables -S) prints them (empty after removal).
  returned: success
  type: dict
  sample:
    HUBFLEET-1a2b3c4d-F: ["-A HUBFLEET-1a2b3c4d-F -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    HUBFLEET-1a2b3c4d-I: ["-A HUBFLEET-1a2b3c4d-I -j REJECT --reject-with icmp-port-unreachable"]
    DOCKER-USER: ["-A DOCKER-USER -i br-3f2c0e8d9b1a -j HUBFLEET-1a2b3c4d-F"]
    INPUT: ["-A INPUT -i br-3f2c0e8d9b1a -j HUBFLEET-1a2b3c4d-I"]
actions:
  description: The iptables commands run (or that would run in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: ["iptables -N HUBFLEET-1a2b3c4d-F", "iptables -A HUBFLEET-1a2b3c4d-F -j RETURN"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.docker_common import (
    DOCKER_ERRORS,
    connect,
    docker_argument_spec,
    docker_error_message,
)
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.firewall import (
    FORWARD_PARENT,
    AllowlistError,
    apply_commands,
    bridge_interface,
    chain_body,
    container_address,
    detect_backend,
    existing_state,
    parse_allowlist,
    remove_commands,
    rules_lock,
    wanted_state,
)


class FirewallError(Exception):
    """A problem the module reports as its failure message."""


class Iptables:
    """The host's ``iptables`` command (always with ``-w``: wait for the xtables lock)."""

    def __init__(self, module):
        self.module = module
        self.binary = module.get_bin_path("iptables")
        if not self.binary:
            raise FirewallError("iptables is not installed on the Docker host (the module needs it, run as root)")

    def run(self, args, check=True):
        rc, out, err = self.module.run_command([self.binary, "-w"] + list(args))
        if check and rc != 0:
            raise FirewallError("iptables %s failed: %s" % (" ".join(args), (err or out).strip()))
        return rc, out

    def backend(self):
        """The variant in use, refusing one that does not hold dockerd's DOCKER-USER chain."""
        rc, out, err = self.module.run_command([self.binary, "--version"])
        variant = detect_backend(out or err)
        if variant is None:
            raise FirewallError("cannot tell the iptables variant from %r; supported: nf_tables, legacy" % (out or err))
        if self.listing(FORWARD_PARENT) is None:
            other = "iptables-legacy" if variant == "nf_tables" else "iptables-nft"
            other_binary = self.module.get_bin_path(other)
            if other_binary and self.module.run_command([other_binary, "-w", "-S", FORWARD_PARENT])[0] == 0:
                raise FirewallError(
                    "dockerd's DOCKER-USER chain is in %s but `iptables` on this host is %s: "
                    "rules there would never see container traffic; switch the iptables alternative "
                    "(update-alternatives --set iptables /usr/sbin/%s) and run again" % (other, variant, other))
            raise FirewallError(
                "there is no DOCKER-USER chain (%s): is dockerd running with its iptables rules enabled?" % variant)
        return variant

    def listing(self, chain):
        """The ``-A`` lines of ``chain``, or None when it does not exist."""
        rc, out = self.run(["-S", chain], check=False)
        return chain_body(out) if rc == 0 else None


BRIDGE_NF_CALL_IPTABLES = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def bridged_traffic_is_filtered():
    """Whether packets between two containers on one bridge pass iptables (br_netfilter on)."""
    try:
        with open(BRIDGE_NF_CALL_IPTABLES) as setting:
            return setting.read().strip() == "1"
    except (IOError, OSError):
        return False


class HubFirewall:
    """Compare the wanted chains and jumps with the host's, then apply or remove them."""

    def __init__(self, module, iptables, client):
        self.module = module
        self.iptables = iptables
        self.client = client
        self.params = module.params
        self.actions = []
        self.interface = ""

    # --- what exists -----------------------------------------------------------------

    def get_network(self):
        """The network's bridge interface and whether it exists; refuses what is not a bridge."""
        name = self.params["network"]
        try:
            network = self.client.inspect_network(name)
        except DOCKER_ERRORS as exc:
            if getattr(exc, "status_code", None) == 404:
                return None
            raise
        if network.get("Driver") != "bridge":
            raise FirewallError(
                "network %s (network) has driver %s; only bridge networks on one host are supported "
                "(a swarm overlay's user servers are isolated on each node by hubfleet-firewall watch, which the "
                "jupyterhub role's fleet_firewall.yml installs)" % (name, network.get("Driver")))
        if network.get("EnableIPv6"):
            raise FirewallError("network %s (network) has IPv6 enabled; only IPv4 rules are implemented" % name)
        return bridge_interface(network)

    def hub_addresses(self):
        container = self.params["hub_container"]
        if not container:
            return []
        try:
            container_attrs = self.client.inspect_container(container)
        except DOCKER_ERRORS as exc:
            if getattr(exc, "status_code", None) == 404 and self.module.check_mode:
                self.module.warn("hub_container %s does not exist yet; its exemption is left out of check mode" % container)
                return []
            raise
        address = container_address(container_attrs, self.params["network"])
        if not address:
            raise FirewallError("hub_container %s is not attached to network %s" % (container, self.params["network"]))
        return [address]

    def existing(self):
        """``{chain: rules}`` of our chains (absent ones left out) and the jumps to them."""
        return existing_state(self.iptables.listing, self.params["network"])

    def wanted(self, interface):
        try:
            allowlist = parse_allowlist(self.params["allowlist"])
        except AllowlistError as exc:
            raise FirewallError("allowlist: %s" % exc)
        for port in self.params["host_ports"] + [self.params["hub_api_port"]]:
            if not 1 <= port <= 65535:
                raise FirewallError("port %d (host_ports/hub_api_port) is outside 1-65535" % port)
        return wanted_state(self.params["network"], interface, self.hub_addresses(), self.params["hub_api_port"],
                            self.params["host_ports"], allowlist)

    # --- changes ---------------------------------------------------------------------

    def run(self, args):
        self.actions.append("iptables " + " ".join(args))
        if not self.module.check_mode:
            self.iptables.run(args)

    def present(self, before):
        interface = self.get_network()
        if interface is None:
            if self.module.check_mode:
                self.module.warn("network %s does not exist yet; no rules can be computed" % self.params["network"])
                return before, True
            raise FirewallError("network %s (network) does not exist" % self.params["network"])
        if not bridged_traffic_is_filtered():
            raise FirewallError(
                "%s is not 1 (br_netfilter not loaded?): user servers on the same bridge would reach each other "
                "past these rules; run `modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1` "
                "(dockerd normally does) and run again" % BRIDGE_NF_CALL_IPTABLES)
        self.interface = interface
        after = self.wanted(interface)
        for command in apply_commands(before, after, self.params["network"]):
            self.run(command)
        return after, bool(self.actions)

    def absent(self, before):
        for command in remove_commands(before, self.params["network"]):
            self.run(command)
        return {}, bool(self.actions)


def render(state):
    lines = []
    for chain in sorted(state):
        lines.extend(state[chain])
    return "\n".join(lines) + ("\n" if lines else "")


def main():
    argument_spec = docker_argument_spec()
    argument_spec.update(
        network=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        hub_container=dict(type="str"),
        hub_api_port=dict(type="int", default=8081),
        host_ports=dict(type="list", elements="int", default=[]),
        allowlist=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        # Bad input is refused before anything is looked at or changed.
        parse_allowlist(module.params["allowlist"])
    except AllowlistError as exc:
        module.fail_json(msg="allowlist: %s" % exc)
    try:
        iptables = Iptables(module)
        backend = iptables.backend()
        manager = HubFirewall(module, iptables, connect(module) if module.params["state"] == "present" else None)
        with rules_lock():
            before = manager.existing()
            if module.params["state"] == "present":
                after, changed = manager.present(before)
            else:
                after, changed = manager.absent(before)
    except FirewallError as exc:
        module.fail_json(msg=str(exc))
    except DOCKER_ERRORS as exc:
        module.fail_json(msg="Docker: %s" % docker_error_message(exc))
    result = dict(changed=changed, backend=backend, interface=manager.interface, chains=after, actions=manager.actions)
    if module._diff:
        result["diff"] = dict(before=render(before), after=render(after),
                              before_header="iptables rules", after_header="iptables rules")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
