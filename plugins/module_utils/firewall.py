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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
INPUT_PARENT = "INPUT"


class AllowlistError(ValueError):
    """An allowlist entry that is not an IPv4 CIDR with an optional port."""


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
    servers reach the hub's API port and DNS anywhere; the allowlist; then other containers
    on the same bridge, the private, shared and link-local ranges are rejected; the rest
    (the public internet) returns to Docker's own rules.
    """
    rules = ["-A %s %s" % (chain, ESTABLISHED)]
    for address in hub_addresses:
        rules.append("-A %s -s %s -j RETURN" % (chain, _host(address)))
    for address in hub_addresses:
        rules.append("-A %s -d %s -p tcp -m tcp --dport %d -j RETURN" % (chain, _host(address), hub_api_port))
    for protocol in ("udp", "tcp"):
        rules.append("-A %s -p %s -m %s --dport %d -j RETURN" % (chain, protocol, protocol, DNS_PORT))
    for cidr, port in allowlist:
        if port is None:
            rules.append("-A %s -d %s -j RETURN" % (chain, cidr))
        else:
            for protocol in ("tcp", "udp"):
                rules.append("-A %s -d %s -p %s -m %s --dport %d -j RETURN" % (chain, cidr, protocol, protocol, port))
    rules.append("-A %s -o %s %s" % (chain, interface, REJECT))
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
