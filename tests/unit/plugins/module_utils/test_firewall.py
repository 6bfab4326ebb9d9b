# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewall: the rules of one hub network, the allowlist, the iptables variant."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.firewall import (
    AllowlistError,
    apply_commands,
    bridge_interface,
    chain_body,
    chain_names,
    container_address,
    delete_command,
    detect_backend,
    forward_rules,
    input_rules,
    insert_command,
    jump_rule,
    jumps_to,
    parse_allowlist,
    network_subnets,
    remove_commands,
    restore_script,
    swarm_hub_addresses,
    task_rules,
    task_rules6,
    wanted_state,
)

REJECT = "-j REJECT --reject-with icmp-port-unreachable"


def test_chain_names_are_stable_short_and_per_network():
    forward, incoming = chain_names("jupyterhub")
    assert (forward, incoming) == chain_names("jupyterhub")
    assert forward.startswith("HUBFLEET-") and forward.endswith("-F") and incoming.endswith("-I")
    assert len(chain_names("a" * 200)[0]) <= 28
    assert chain_names("other")[0] != forward


@pytest.mark.parametrize(
    "entries, parsed",
    [
        ([], []),
        (["10.1.2.3"], [("10.1.2.3/32", None)]),
        (["10.1.2.3/32:27000"], [("10.1.2.3/32", 27000)]),
        (["192.168.50.0/24", " 172.16.0.0/12:2049 "], [("192.168.50.0/24", None), ("172.16.0.0/12", 2049)]),
    ],
)
def test_allowlist_entries_are_normalised(entries, parsed):
    assert parse_allowlist(entries) == parsed


@pytest.mark.parametrize(
    "entry, says",
    [
        ("10.0.0.5/24", "host bits"),
        ("10.0.0.0/33", "not a valid"),
        ("300.1.1.1", "not a valid"),
        ("10.0.0.0/8:0", "outside 1-65535"),
        ("10.0.0.0/8:70000", "outside 1-65535"),
        ("fd00::/8", "IPv6"),
        ("licence-server:27000", "not an IPv4 CIDR"),
        ("", "not an IPv4 CIDR"),
    ],
)
def test_bad_allowlist_entries_are_refused_naming_the_entry(entry, says):
    with pytest.raises(AllowlistError) as caught:
        parse_allowlist(["10.0.0.0/8", entry])
    assert says in str(caught.value) and repr(entry) in str(caught.value)


def test_forward_rules_whole_chain():
    rules = forward_rules("F", "br-abc", hub_addresses=["172.30.0.2"], hub_api_port=8081,
                          allowlist=[("10.9.0.0/16", None), ("10.1.2.3/32", 27000)])
    assert rules == [
        "-A F -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A F -s 172.30.0.2/32 -j RETURN",
        "-A F -d 172.30.0.2/32 -p tcp -m tcp --dport 8081 -j RETURN",
        "-A F -o br-abc " + REJECT,
        "-A F -p udp -m udp --dport 53 -j RETURN",
        "-A F -p tcp -m tcp --dport 53 -j RETURN",
        "-A F -d 10.9.0.0/16 -j RETURN",
        "-A F -d 10.1.2.3/32 -p tcp -m tcp --dport 27000 -j RETURN",
        "-A F -d 10.1.2.3/32 -p udp -m udp --dport 27000 -j RETURN",
        "-A F -d 10.0.0.0/8 " + REJECT,
        "-A F -d 172.16.0.0/12 " + REJECT,
        "-A F -d 192.168.0.0/16 " + REJECT,
        "-A F -d 100.64.0.0/10 " + REJECT,
        "-A F -d 169.254.0.0/16 " + REJECT,
        "-A F -j RETURN",
    ]


def test_forward_rules_without_hub_or_allowlist_still_reject_the_metadata_range():
    rules = forward_rules("F", "br-abc")
    assert "-A F -d 169.254.0.0/16 " + REJECT in rules
    assert not [rule for rule in rules if " -s " in rule or "8081" in rule]
    assert rules[-1] == "-A F -j RETURN"


def test_allowlist_comes_before_every_reject_of_addresses_off_the_bridge():
    rules = forward_rules("F", "br-abc", allowlist=[("10.1.0.0/16", None)])
    allow = rules.index("-A F -d 10.1.0.0/16 -j RETURN")
    assert all(allow < index for index, rule in enumerate(rules) if "REJECT" in rule and "-o br-abc" not in rule)


def test_other_servers_on_the_bridge_are_rejected_before_dns_passes():
    # A user's container may bind port 53 (Docker lets unprivileged processes bind low
    # ports in a container): DNS must not be a way to reach another user's server.
    rules = forward_rules("F", "br-abc", hub_addresses=["172.30.0.2"])
    bridge = rules.index("-A F -o br-abc " + REJECT)
    dns = [index for index, rule in enumerate(rules) if "--dport 53" in rule]
    assert dns and all(bridge < index for index in dns)


def test_input_rules_whole_chain():
    assert input_rules("I", host_ports=[8081]) == [
        "-A I -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A I -p udp -m udp --dport 53 -j RETURN",
        "-A I -p tcp -m tcp --dport 53 -j RETURN",
        "-A I -p tcp -m tcp --dport 8081 -j RETURN",
        "-A I " + REJECT,
    ]


def test_jumps_are_found_inserted_and_deleted():
    parent = chain_body("-N DOCKER-USER\n-A DOCKER-USER -i br-old -j F\n-A DOCKER-USER -i br-x -j OTHER-F\n-A DOCKER-USER -j RETURN\n")
    assert jumps_to(parent, "F") == ["-A DOCKER-USER -i br-old -j F"]
    rule = jump_rule("DOCKER-USER", "br-new", "F")
    assert rule == "-A DOCKER-USER -i br-new -j F"
    assert insert_command(rule) == ["-I", "DOCKER-USER", "1", "-i", "br-new", "-j", "F"]
    assert delete_command(rule) == ["-D", "DOCKER-USER", "-i", "br-new", "-j", "F"]


@pytest.mark.parametrize(
    "output, backend",
    [
        ("iptables v1.8.9 (nf_tables)\n", "nf_tables"),
        ("iptables v1.8.7 (legacy)\n", "legacy"),
        ("iptables v1.6.1\n", "legacy"),
        ("something else", None),
    ],
)
def test_backend_is_read_from_the_version(output, backend):
    assert detect_backend(output) == backend


@pytest.mark.parametrize(
    "network, interface",
    [
        ({"Name": "hub", "Id": "3f2c0e8d9b1a77", "Options": {}}, "br-3f2c0e8d9b1a"),
        ({"Name": "hub", "Id": "3f2c0e8d9b1a77", "Options": {"com.docker.network.bridge.name": "hubbr0"}}, "hubbr0"),
        ({"Name": "bridge", "Id": "abc", "Options": None}, "docker0"),
    ],
)
def test_bridge_interface_of_a_network(network, interface):
    assert bridge_interface(network) == interface


def test_container_address_on_one_network():
    container = {"NetworkSettings": {"Networks": {"hub": {"IPAddress": "172.18.0.3"}, "other": {"IPAddress": ""}}}}
    assert container_address(container, "hub") == "172.18.0.3"
    assert container_address(container, "other") is None
    assert container_address(container, "missing") is None
    assert container_address({"NetworkSettings": {"Networks": None}}, "hub") is None


def test_apply_commands_create_fill_then_jump_and_nothing_when_in_place():
    forward, incoming = chain_names("hub")
    after = wanted_state("hub", "br-x", ["172.18.0.2"], 8081, [], [])
    commands = apply_commands({}, after, "hub")
    assert commands[0] == ["-N", forward]
    assert commands[1:1 + len(after[forward])] == [rule.split() for rule in after[forward]]
    assert commands.index(["-N", incoming]) > commands.index(after[forward][-1].split())
    assert commands[-2:] == [["-I", "DOCKER-USER", "1", "-i", "br-x", "-j", forward],
                             ["-I", "INPUT", "1", "-i", "br-x", "-j", incoming]]
    assert apply_commands(after, after, "hub") == []


def test_apply_commands_refill_a_chain_that_differs_and_move_a_jump_to_a_new_bridge():
    forward, incoming = chain_names("hub")
    before = wanted_state("hub", "br-old", ["172.18.0.2"], 8081, [], [])
    after = wanted_state("hub", "br-new", ["172.18.0.3"], 8081, [], [])
    commands = apply_commands(before, after, "hub")
    assert ["-N", forward] not in commands and ["-F", forward] in commands
    assert ["-F", incoming] not in commands, "the input chain names neither the bridge nor the hub: left as it is"
    assert ["-D", "DOCKER-USER", "-i", "br-old", "-j", forward] in commands
    assert commands.index(["-D", "INPUT", "-i", "br-old", "-j", incoming]) < commands.index(
        ["-I", "INPUT", "1", "-i", "br-new", "-j", incoming])


def test_remove_commands_drop_the_jumps_before_the_chains():
    forward, incoming = chain_names("hub")
    before = wanted_state("hub", "br-x")
    assert remove_commands(before, "hub") == [
        ["-D", "DOCKER-USER", "-i", "br-x", "-j", forward],
        ["-D", "INPUT", "-i", "br-x", "-j", incoming],
        ["-F", forward], ["-X", forward], ["-F", incoming], ["-X", incoming],
    ]
    assert remove_commands({}, "hub") == []


# --- the fleet: rules in each user server's own network namespace --------------------------


def test_task_rules_whole_chains():
    chains = task_rules(hub_addresses=["10.231.255.249"], hub_api_port=8081, overlay_subnets=["10.231.0.0/16"],
                        node_addresses=["172.19.0.2", "203.0.113.7"], allowlist=[("10.20.0.5/32", 27000)])
    assert chains == {
        "HUBFLEET-OUT": [
            "-A HUBFLEET-OUT -o lo -j RETURN",
            "-A HUBFLEET-OUT -m conntrack --ctdir REPLY -j RETURN",
            "-A HUBFLEET-OUT -d 10.231.255.249/32 -p tcp -m tcp --dport 8081 -j RETURN",
            "-A HUBFLEET-OUT -d 10.231.0.0/16 " + REJECT,
            "-A HUBFLEET-OUT -d 172.19.0.2/32 " + REJECT,
            "-A HUBFLEET-OUT -d 203.0.113.7/32 " + REJECT,
            "-A HUBFLEET-OUT -d 10.20.0.5/32 -p tcp -m tcp --dport 27000 -j RETURN",
            "-A HUBFLEET-OUT -d 10.20.0.5/32 -p udp -m udp --dport 27000 -j RETURN",
            "-A HUBFLEET-OUT -d 10.0.0.0/8 " + REJECT,
            "-A HUBFLEET-OUT -d 172.16.0.0/12 " + REJECT,
            "-A HUBFLEET-OUT -d 192.168.0.0/16 " + REJECT,
            "-A HUBFLEET-OUT -d 100.64.0.0/10 " + REJECT,
            "-A HUBFLEET-OUT -d 169.254.0.0/16 " + REJECT,
            "-A HUBFLEET-OUT -j RETURN",
        ],
        "HUBFLEET-IN": [
            "-A HUBFLEET-IN -i lo -j RETURN",
            "-A HUBFLEET-IN -m conntrack --ctdir REPLY -j RETURN",
            "-A HUBFLEET-IN -s 10.231.255.249/32 -j RETURN",
            "-A HUBFLEET-IN " + REJECT,
        ],
    }


def test_task_rules_without_the_hub_fail_closed():
    chains = task_rules(overlay_subnets=["10.0.1.0/24"])
    assert not [rule for rule in chains["HUBFLEET-OUT"] + chains["HUBFLEET-IN"] if "8081" in rule or " -s " in rule]
    assert chains["HUBFLEET-IN"][-1] == "-A HUBFLEET-IN " + REJECT


def test_the_overlay_is_rejected_before_the_allowlist_even_when_it_covers_it():
    out = task_rules(overlay_subnets=["10.0.1.0/24"], allowlist=[("10.0.0.0/8", None)])["HUBFLEET-OUT"]
    assert out.index("-A HUBFLEET-OUT -d 10.0.1.0/24 " + REJECT) < out.index("-A HUBFLEET-OUT -d 10.0.0.0/8 -j RETURN")


def test_task_rules6_deny_link_local_unique_local_and_multicast_but_keep_neighbour_discovery():
    chains = task_rules6()
    reject6 = "-j REJECT --reject-with icmp6-port-unreachable"
    out = chains["HUBFLEET-OUT"]
    for cidr in ("fe80::/10", "fc00::/7", "ff00::/8"):
        assert "-A HUBFLEET-OUT -d %s %s" % (cidr, reject6) in out
    for kind in (133, 134, 135, 136):
        rule = "-p ipv6-icmp -m icmp6 --icmpv6-type %d -j RETURN" % kind
        assert out.index("-A HUBFLEET-OUT " + rule) < out.index("-A HUBFLEET-OUT -d fe80::/10 " + reject6)
        assert "-A HUBFLEET-IN " + rule in chains["HUBFLEET-IN"]
    assert out[-1] == "-A HUBFLEET-OUT -j RETURN"
    assert chains["HUBFLEET-IN"][-1] == "-A HUBFLEET-IN " + reject6


def test_restore_script_replaces_the_filter_table_with_the_jumps_first():
    script = restore_script({"HUBFLEET-OUT": ["-A HUBFLEET-OUT -j RETURN"], "HUBFLEET-IN": ["-A HUBFLEET-IN -j RETURN"]})
    assert script == "\n".join([
        "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":HUBFLEET-IN - [0:0]", ":HUBFLEET-OUT - [0:0]",
        "-A INPUT -j HUBFLEET-IN", "-A OUTPUT -j HUBFLEET-OUT",
        "-A HUBFLEET-IN -j RETURN", "-A HUBFLEET-OUT -j RETURN", "COMMIT", ""])


VERBOSE_OVERLAY = {
    "IPAM": {"Config": [{"Subnet": "10.231.0.0/16", "Gateway": "10.231.0.1"}, {"Subnet": "fd00:1::/64"}]},
    "Services": {
        "": {"Tasks": [{"Name": "hfs1-hub", "EndpointIP": "10.231.255.249"}, {"Name": "other", "EndpointIP": "10.231.0.9"}]},
        "hubfleet-hub": {"Tasks": [{"Name": "hubfleet-hub.1.x", "EndpointIP": "10.231.0.2"}]},
        "hubfleet-alice": {"Tasks": [{"Name": "hubfleet-alice.1.y", "EndpointIP": "10.231.0.4"}]},
    },
}


@pytest.mark.parametrize(
    "hub, addresses",
    [("hubfleet-hub", ["10.231.0.2"]), ("hfs1-hub", ["10.231.255.249"]), ("gone", [])],
)
def test_the_hubs_overlay_addresses_are_those_of_its_service_or_its_attached_container(hub, addresses):
    assert swarm_hub_addresses(VERBOSE_OVERLAY, hub) == addresses


def test_network_subnets_are_the_ipv4_ones():
    assert network_subnets(VERBOSE_OVERLAY) == ["10.231.0.0/16"]
    assert network_subnets({}) == []
