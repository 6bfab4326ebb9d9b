# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hub_network: turning Docker's inspect data into the options the module manages."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hubfleet.jupyterhub.plugins.modules.hub_network import describe


def _inspect(**overrides):
    network = {
        "Id": "abc123",
        "Name": "jupyterhub",
        "Driver": "overlay",
        "Scope": "swarm",
        "Attachable": True,
        "Internal": False,
        "IPAM": {"Config": [{"Subnet": "10.0.9.0/24", "Gateway": "10.0.9.1"}]},
        "Options": {"encrypted": "", "com.docker.network.driver.overlay.vxlanid_list": "4097"},
        "Labels": {"hubfleet.hub": "jupyterhub"},
    }
    network.update(overrides)
    return network


def test_no_network_describes_as_empty():
    assert describe(None) == {}


def test_encryption_is_its_own_option_not_a_driver_option():
    described = describe(_inspect())
    assert described["encrypted"] is True
    assert "encrypted" not in described["driver_options"]
    assert described["driver_options"] == {"com.docker.network.driver.overlay.vxlanid_list": "4097"}


def test_subnet_gateway_and_scope_are_reported():
    described = describe(_inspect())
    assert (described["subnet"], described["gateway"], described["ip_range"]) == ("10.0.9.0/24", "10.0.9.1", None)
    assert (described["id"], described["driver"], described["scope"]) == ("abc123", "overlay", "swarm")


def test_network_without_ipam_config_or_labels():
    described = describe(_inspect(IPAM={"Config": None}, Options=None, Labels=None, Attachable=None))
    assert described["subnet"] is None
    assert described["encrypted"] is False
    assert described["driver_options"] == {}
    assert described["labels"] == {}
    assert described["attachable"] is False
