"""hub_firewall and a hub network with IPv6 enabled: refused, naming the network and IPv6,
nothing changed (its rules are IPv4 only; see README, "Network isolation").

The engine here allows such a network (``docker network create --ipv6``), so this is the
real module against a real one the test creates; no container is started, nothing is
sent. Not under the host lock: it changes no rules and restarts nothing.
"""

import sys
import uuid
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from testbed.hub_rules import hub_firewall, hub_rule_lines  # noqa: E402
from testbed.images import TEST_LABEL  # noqa: E402


@pytest.fixture
def ipv6_network():
    client = docker.from_env()
    name = "hft-ipv6-" + uuid.uuid4().hex[:8]
    # A unique local subnet the test makes up; nothing is ever sent to it.
    network = client.networks.create(name, driver="bridge", enable_ipv6=True, labels={TEST_LABEL: "firewall-ipv6"},
                                     ipam=docker.types.IPAMConfig(pool_configs=[
                                         docker.types.IPAMPool(subnet="fd00:%x::/64" % (uuid.uuid4().int % 0xffff))]))
    try:
        yield name
    finally:
        network.remove()


def test_a_network_with_ipv6_is_refused_naming_it_and_nothing_changes(ipv6_network):
    result = hub_firewall({"network": ipv6_network})
    assert result.get("failed"), result
    assert "network %s (network) has IPv6 enabled" % ipv6_network in result["msg"], result["msg"]
    assert hub_rule_lines(ipv6_network) == []
