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


class _Client(object):
    """Answers inspect_network with the given answers in turn, the last one from then on."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def inspect_network(self, network_id):
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]

    def networks(self, names):
        return [{"Name": "jupyterhub", "Id": "abc123"}]


class _Module(object):
    check_mode = False

    def __init__(self):
        self.params = {"name": "jupyterhub"}

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs["msg"])


def test_a_swarm_network_is_read_once_swarm_has_allocated_it(monkeypatch):
    from ansible_collections.hubfleet.jupyterhub.plugins.modules import hub_network

    monkeypatch.setattr(hub_network.time, "sleep", lambda seconds: None)
    pending = _inspect(Driver="", IPAM={"Config": None}, Options=None)
    client = _Client(pending, pending, _inspect())
    manager = hub_network.HubNetworkManager(_Module(), client)
    assert client.calls == 3
    assert describe(manager.existing)["driver"] == "overlay"
    assert describe(manager.existing)["subnet"] == "10.0.9.0/24"


def test_a_swarm_network_never_allocated_fails_naming_it(monkeypatch):
    from ansible_collections.hubfleet.jupyterhub.plugins.modules import hub_network

    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(hub_network.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(hub_network.time, "monotonic", lambda: next(clock))
    client = _Client(_inspect(Driver=""))
    try:
        hub_network.HubNetworkManager(_Module(), client)
    except AssertionError as error:
        assert "jupyterhub" in str(error) and "not allocated" in str(error)
    else:
        raise AssertionError("a network swarm never allocates must fail the task")
