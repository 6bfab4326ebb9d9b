# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables rules that isolate one hub's user network (pure logic, no iptables calls).

* ``chain_names(network)`` - the two chains of one hub network (forwarded traffic, traffic
  to the host itself), short and stable.
* ``parse_allowlist(entries)`` - ``CIDR[:port]`` strings checked and normalised, or
  ``AllowlistError`` naming the bad entry.
* ``forward_rules(...)`` / ``input_rules(...)`` / ``jump_rule(...)`` - the rules, written
  exactly as ``iptables -S`` prints them, so the rules read back compare equal.
* ``detect_backend(version_output)`` - ``nf_tables`` or ``legacy`` from ``iptables --version``.
* ``bridge_interface(network)`` / ``container_address(container, network)`` - what the rules
  need from ``docker network inspect`` and ``docker container inspect``.
* ``wanted_state(...)`` / ``existing_state(listing, ...)`` / ``apply_commands(before, after, ...)``
  / ``remove_commands(before, ...)`` - the whole state of one hub's chains and the iptables
  commands that reconcile it, shared by the module and by the program that re-applies the
  rules whenever the engine starts (roles/jupyterhub/files/hubfleet-firewall.py).
* ``task_rules(...)`` / ``task_rules6(...)`` / ``restore_script(chains)`` - the fleet's rules: IPv4
  and IPv6 chains in each user server's own network namespace (a swarm overlay has no bridge
  on the node that iptables could filter), written as ``iptables-restore`` input that replaces
  the namespace's filter table at once; ``swarm_hub_addresses(network, hub)`` and
  ``network_subnets(network)`` read what they need from ``docker network inspect --verbose``.
  Applied by each node (``hubfleet-firewall watch``).
* ``rules_lock()`` - held while one hub's chains are read and changed, by the module and by
  hubfleet-firewall, which may both reconcile the same chains at once (a hub restarted
  during a playbook run): one waits for the other, then finds them as wanted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import hashlib
import ipaddress
import re

# Denied unless allowlisted: RFC 1918 private ranges, shared address space (RFC 6598) and
# link-local, which holds the cloud metadata address 169.254.169.254.
DENIED_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
METADATA_ADDRESS = "169.254.169.254"
DNS_PORT = 53
REJECT = "-j REJECT --reject-with icmp-port-unreachable"
ESTABLISHED = "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
FORWARD_PARENT = "DOCKER-USER"
# In a user server's own network namespace (the fleet): the chains OUTPUT and INPUT jump to.
TASK_OUTPUT_CHAIN = "HUBFLEET-OUT"
TASK_INPUT_CHAIN = "HUBFLEET-IN"
# IPv6 denied there: link-local (reaches every container on the same overlay even on a
# network without IPv6, through the addresses the kernel gives each interface), unique local
# and multicast. Neighbour discovery (ICMPv6 133-136) stays, or no IPv6 packet would leave.
DENIED_RANGES6 = ("fe80::/10", "fc00::/7", "ff00::/8")
NEIGHBOUR_DISCOVERY = (133, 134, 135, 136)
REJECT6 = "-j REJECT --reject-with icmp6-port-unreachable"
# Replies to connections someone else opened (the hub, the proxy). Not ESTABLISHED: a
# connection the server itself opened before the rules were in place then still dies.
REPLIES = "-m conntrack --ctdir REPLY -j RETURN"
INPUT_PARENT = "INPUT"


class AllowlistError(ValueError):
    """An allowlist entry that is not an IPv4 CIDR with an optional port."""


RULES_LOCK = "/run/hubfleet-firewall.lock"


@contextlib.contextmanager
def rules_lock(path=RULES_LOCK):
    """Hold the host's lock of the hub chains (waits for the other holder)."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def chain_names(network):
    """``(forward_chain, input_chain)`` of a hub network: HUBFLEET-<8 hex of the name>-F/-I.

    iptables limits chain names to 28 characters and Docker network names are longer and
    freer than that, so the name is hashed; the module reports which chain is whose.
    """
    digest = hashlib.sha256(network.encode("utf-8")).hexdigest()[:8]
    return "HUBFLEET-%s-F" % digest, "HUBFLEET-%s-I" % digest


def parse_allowlist(entries):
    """``[(cidr, port or None)]`` from ``["10.1.2.3/32:27000", "192.0.2.0/24", ...]``.

    A bare address means /32. Host bits set (``10.0.0.5/24``), IPv6, ports outside
    1-65535 and anything else raise ``AllowlistError`` naming the entry.
    """
    parsed = []
    for entry in entries:
        text = str(entry).strip()
        match = re.match(r"^([0-9./]+)(?::([0-9]+))?$", text)
        if not match:
            raise AllowlistError("%r is not an IPv4 CIDR or CIDR:port (IPv6 is not supported yet)" % (entry,))
        address, port = match.group(1), match.group(2)
        try:
            network = ipaddress.ip_network(address, strict=True)
        except ValueError as exc:
            raise AllowlistError("%r is not a valid IPv4 CIDR: %s" % (entry, exc))
        if port is not None:
            port = int(port)
            if not 1 <= port <= 65535:
                raise AllowlistError("%r: port %d is outside 1-65535" % (entry, port))
        parsed.append((str(network), port))
    return parsed


def _host(address):
    return "%s/32" % ipaddress.ip_address(address)


def forward_rules(chain, interface, hub_addresses=(), hub_api_port=8081, allowlist=()):
    """The rules of the chain DOCKER-USER jumps to for traffic coming from the user bridge.

    In order: replies pass; the hub (its addresses on the bridge) reaches everything; user
    servers reach the hub's API port; anything else on the same bridge (other servers, on
    any port, DNS's included: a container may bind port 53) is rejected; DNS to resolvers
    off the bridge passes; the allowlist; then the private, shared and link-local ranges
    are rejected; the rest (the public internet) returns to Docker's own rules.
    """
    rules = ["-A %s %s" % (chain, ESTABLISHED)]
    for address in hub_addresses:
        rules.append("-A %s -s %s -j RETURN" % (chain, _host(address)))
    for address in hub_addresses:
        rules.append("-A %s -d %s -p tcp -m tcp --dport %d -j RETURN" % (chain, _host(address), hub_api_port))
    rules.append("-A %s -o %s %s" % (chain, interface, REJECT))
    for protocol in ("udp", "tcp"):
        rules.append("-A %s -p %s -m %s --dport %d -j RETURN" % (chain, protocol, protocol, DNS_PORT))
    return rules + _allowlist_then_private_denied(chain, allowlist)


def _allowlist_then_private_denied(chain, allowlist, reject_first=()):
    """The end of an outgoing chain: the allowlist passes, ``reject_first`` and the denied
    ranges are rejected, the rest returns."""
    rules = []
    for cidr, port in allowlist:
        if port is None:
            rules.append("-A %s -d %s -j RETURN" % (chain, cidr))
        else:
            for protocol in ("tcp", "udp"):
                rules.append("-A %s -d %s -p %s -m %s --dport %d -j RETURN" % (chain, cidr, protocol, protocol, port))
    rules.extend(reject_first)
    for cidr in DENIED_RANGES:
        rules.append("-A %s -d %s %s" % (chain, cidr, REJECT))
    rules.append("-A %s -j RETURN" % chain)
    return rules


def input_rules(chain, host_ports=()):
    """The rules of the chain INPUT jumps to for traffic from the user bridge to the host.

    Replies pass (the proxy and a hub on the host talk to the servers), DNS and the
    ``host_ports`` (a hub process on the host) are allowed, everything else is rejected:
    the gateway address, published ports, the Docker API on TCP, sshd.
    """
    rules = ["-A %s %s" % (chain, ESTABLISHED)]
    for protocol in ("udp", "tcp"):
        rules.append("-A %s -p %s -m %s --dport %d -j RETURN" % (chain, protocol, protocol, DNS_PORT))
    for port in host_ports:
        rules.append("-A %s -p tcp -m tcp --dport %d -j RETURN" % (chain, port))
    rules.append("-A %s %s" % (chain, REJECT))
    return rules


def jump_rule(parent, interface, chain):
    """The rule in ``parent`` that sends the user bridge's packets to ``chain``."""
    return "-A %s -i %s -j %s" % (parent, interface, chain)


def jumps_to(parent_rules, chain):
    """The rules of a parent chain (``iptables -S`` lines) that jump to ``chain``."""
    return [rule for rule in parent_rules if rule.startswith("-A ") and rule.split()[-2:] == ["-j", chain]]


def chain_body(listing):
    """The ``-A`` lines of an ``iptables -S CHAIN`` listing (without ``-N``/``-P``)."""
    return [line.strip() for line in listing.splitlines() if line.startswith("-A ")]


def delete_command(rule):
    """``-A CHAIN spec`` as the arguments that delete that rule: ``-D CHAIN spec``."""
    return ["-D"] + rule.split()[1:]


def insert_command(rule, position=1):
    """``-A CHAIN spec`` as the arguments that insert it first: ``-I CHAIN 1 spec``."""
    words = rule.split()
    return ["-I", words[1], str(position)] + words[2:]


def detect_backend(version_output):
    """``nf_tables`` or ``legacy`` from ``iptables --version``; None when neither is named.

    iptables 1.8+ prints ``iptables v1.8.9 (nf_tables)`` or ``(legacy)``; older ones print
    no variant and are always legacy.
    """
    text = version_output.strip()
    if "(nf_tables)" in text:
        return "nf_tables"
    if "(legacy)" in text:
        return "legacy"
    match = re.match(r"^iptables v1\.([0-7])\.", text)
    if match:
        return "legacy"
    return None


def bridge_interface(network):
    """The bridge interface of a network, from its ``docker network inspect`` dict."""
    options = network.get("Options") or {}
    if options.get("com.docker.network.bridge.name"):
        return options["com.docker.network.bridge.name"]
    return "docker0" if network.get("Name") == "bridge" else "br-" + network["Id"][:12]


def container_address(container, network):
    """The IPv4 address of a container (``docker container inspect`` dict) on ``network``, or None."""
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    return (networks.get(network) or {}).get("IPAddress") or None


def wanted_state(network, interface, hub_addresses=(), hub_api_port=8081, host_ports=(), allowlist=()):
    """``{chain: rules}`` of one hub network: both chains and the jumps to them.

    ``allowlist`` is what ``parse_allowlist`` returns.
    """
    forward_chain, input_chain = chain_names(network)
    return {
        forward_chain: forward_rules(forward_chain, interface, hub_addresses, hub_api_port, allowlist),
        input_chain: input_rules(input_chain, host_ports),
        FORWARD_PARENT: [jump_rule(FORWARD_PARENT, interface, forward_chain)],
        INPUT_PARENT: [jump_rule(INPUT_PARENT, interface, input_chain)],
    }


def existing_state(listing, network):
    """``{chain: rules}`` as the host has them: our chains that exist, the jumps to them.

    ``listing(chain)`` returns the ``-A`` lines of a chain, or None when it does not exist.
    """
    forward_chain, input_chain = chain_names(network)
    state = {}
    for chain in (forward_chain, input_chain):
        rules = listing(chain)
        if rules is not None:
            state[chain] = rules
    for parent, chain in ((FORWARD_PARENT, forward_chain), (INPUT_PARENT, input_chain)):
        jumps = jumps_to(listing(parent) or [], chain)
        if jumps:
            state.setdefault(parent, []).extend(jumps)
    return state


def apply_commands(before, after, network):
    """The iptables argument lists that turn ``before`` into ``after`` (both ``{chain: rules}``).

    Chains first, each filled before anything jumps to it (a chain that differs is flushed
    and filled again), then the jumps. Empty when nothing differs.
    """
    commands = []
    for chain in chain_names(network):
        if chain not in before:
            commands.append(["-N", chain])
        if before.get(chain) != after[chain]:
            if before.get(chain):
                commands.append(["-F", chain])
            commands.extend(rule.split() for rule in after[chain])
    for parent in (FORWARD_PARENT, INPUT_PARENT):
        commands.extend(delete_command(rule) for rule in before.get(parent, []) if rule not in after[parent])
        commands.extend(insert_command(rule) for rule in after[parent] if rule not in before.get(parent, []))
    return commands


def remove_commands(before, network):
    """The iptables argument lists that remove one hub network's chains and jumps.

    Jumps first: a chain that is still referenced cannot be deleted.
    """
    commands = []
    for parent in (FORWARD_PARENT, INPUT_PARENT):
        commands.extend(delete_command(rule) for rule in before.get(parent, []))
    for chain in chain_names(network):
        if chain in before:
            commands.extend([["-F", chain], ["-X", chain]])
    return commands


def task_rules(hub_addresses=(), hub_api_port=8081, overlay_subnets=(), node_addresses=(), allowlist=()):
    """``{chain: rules}`` (IPv4) for the network namespace of one user server of a swarm hub.

    Out: loopback (Docker's embedded DNS at 127.0.0.11 included) and replies pass; the hub's
    API port; then every other address of the overlay (other user servers, on any node) and
    the node's own addresses are rejected, whatever the allowlist says; the allowlist; the
    private, shared and link-local ranges rejected; the rest (the internet) passes.
    In: loopback, replies to what the server opened and anything from the hub (and its
    proxy) pass; the rest is rejected, so a server whose neighbour has no rules yet is still closed.
    """
    out, into = TASK_OUTPUT_CHAIN, TASK_INPUT_CHAIN
    output = ["-A %s -o lo -j RETURN" % out, "-A %s %s" % (out, REPLIES)]
    for address in hub_addresses:
        output.append("-A %s -d %s -p tcp -m tcp --dport %d -j RETURN" % (out, _host(address), hub_api_port))
    for subnet in overlay_subnets:
        output.append("-A %s -d %s %s" % (out, subnet, REJECT))
    for address in node_addresses:
        output.append("-A %s -d %s %s" % (out, _host(address), REJECT))
    output += _allowlist_then_private_denied(out, allowlist)
    incoming = ["-A %s -i lo -j RETURN" % into, "-A %s %s" % (into, REPLIES)]
    for address in hub_addresses:
        incoming.append("-A %s -s %s -j RETURN" % (into, _host(address)))
    incoming.append("-A %s %s" % (into, REJECT))
    return {out: output, into: incoming}


def task_rules6():
    """``{chain: rules}`` (IPv6) for the same namespace: no IPv6 to or from other containers.

    Out: loopback, replies and neighbour discovery pass; link-local, unique local and
    multicast are rejected; the rest (public IPv6, where the network has it) passes.
    In: loopback, replies and neighbour discovery pass; the rest is rejected (the hub
    talks to its servers over IPv4).
    """
    out, into = TASK_OUTPUT_CHAIN, TASK_INPUT_CHAIN
    discovery = ["-p ipv6-icmp -m icmp6 --icmpv6-type %d -j RETURN" % kind for kind in NEIGHBOUR_DISCOVERY]
    output = ["-A %s -o lo -j RETURN" % out, "-A %s %s" % (out, REPLIES)]
    output += ["-A %s %s" % (out, rule) for rule in discovery]
    output += ["-A %s -d %s %s" % (out, cidr, REJECT6) for cidr in DENIED_RANGES6]
    output.append("-A %s -j RETURN" % out)
    incoming = ["-A %s -i lo -j RETURN" % into, "-A %s %s" % (into, REPLIES)]
    incoming += ["-A %s %s" % (into, rule) for rule in discovery]
    incoming.append("-A %s %s" % (into, REJECT6))
    return {out: output, into: incoming}


def restore_script(chains):
    """``iptables-restore`` input that makes the namespace's filter table exactly ``chains``.

    The whole table is replaced in one step (no moment with half the rules); Docker keeps
    only nat rules (its embedded DNS) in a container's namespace, and those stay.
    """
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [":%s - [0:0]" % chain for chain in sorted(chains)]
    lines += ["-A INPUT -j %s" % TASK_INPUT_CHAIN, "-A OUTPUT -j %s" % TASK_OUTPUT_CHAIN]
    for chain in sorted(chains):
        lines.extend(chains[chain])
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def swarm_hub_addresses(network, hub):
    """The overlay addresses of ``hub`` (a service's tasks, or an attached container of that
    name) from a ``docker network inspect --verbose`` dict, as any node of the network sees them."""
    services = network.get("Services") or {}
    addresses = [task.get("EndpointIP") for task in (services.get(hub) or {}).get("Tasks") or []]
    addresses += [task.get("EndpointIP") for task in (services.get("") or {}).get("Tasks") or []
                  if task.get("Name") == hub]
    return sorted(set(address.split("/")[0] for address in addresses if address))


def network_subnets(network):
    """The IPv4 subnets of a network (``docker network inspect`` dict)."""
    subnets = []
    for config in (network.get("IPAM") or {}).get("Config") or []:
        subnet = config.get("Subnet")
        if subnet and ipaddress.ip_network(subnet, strict=False).version == 4:
            subnets.append(str(ipaddress.ip_network(subnet, strict=False)))
    return subnets
