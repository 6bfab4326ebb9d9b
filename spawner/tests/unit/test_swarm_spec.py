"""SwarmSpawner's translation of dockerspawner settings into swarm specs (pure logic)."""

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from hubfleet_spawner import SwarmSpawner
from hubfleet_spawner.errors import SpawnError


class FakeDocker:
    """Answers the one question placement asks: which worker nodes exist."""

    def __init__(self, workers):
        self.workers = workers

    async def call(self, method, **kwargs):
        assert method == "nodes" and kwargs == {"filters": {"role": "worker"}}
        return self.workers


def spawner(workers=(), **config):
    c = Config()
    for key, value in config.items():
        setattr(c.SwarmSpawner, key, value)
    return SwarmSpawner(config=c, docker_api=FakeDocker(list(workers)))


READY_WORKER = {"Status": {"State": "ready"}, "Spec": {"Availability": "active"}}
DRAINED_WORKER = {"Status": {"State": "ready"}, "Spec": {"Availability": "drain"}}


async def test_servers_stay_off_managers_when_a_worker_is_available():
    placement = await spawner([READY_WORKER]).placement()
    assert placement["Constraints"] == ["node.role==worker"]


async def test_a_swarm_of_managers_only_gets_no_role_constraint():
    assert (await spawner([DRAINED_WORKER]).placement())["Constraints"] == []
    assert (await spawner([]).placement())["Constraints"] == []


async def test_constraints_and_preferences_from_config_and_callables():
    s = spawner(
        [READY_WORKER],
        placement_constraints=lambda sp: ["node.labels.hubfleet.pool==gpu"],
        placement_preferences=["spread=node.labels.zone"],
        extra_placement_spec={"MaxReplicas": 1},
    )
    placement = await s.placement()
    assert placement["Constraints"] == ["node.labels.hubfleet.pool==gpu", "node.role==worker"]
    assert placement["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]
    assert placement["MaxReplicas"] == 1


async def test_an_explicit_role_constraint_is_respected():
    s = spawner([READY_WORKER], placement_constraints=["node.role == manager"])
    assert (await s.placement())["Constraints"] == ["node.role == manager"]


def test_swarm_defaults():
    s = SwarmSpawner()
    assert s.endpoint_mode == "dnsrr"
    assert s.use_internal_ip is True
    assert s.pull_policy == "skip"
    assert s.keep_off_managers is True


class NetworkDocker:
    def __init__(self, network):
        self.network = network

    async def call(self, method, *args, **kwargs):
        assert method == "inspect_network"
        return self.network


@pytest.mark.parametrize(
    "network, refused",
    [
        ({"Driver": "overlay", "Scope": "swarm"}, False),
        # Just created: swarm's allocator has not filled in the driver yet.
        ({"Driver": "", "Scope": "swarm"}, False),
        ({"Driver": "bridge", "Scope": "local"}, True),
        ({"Driver": "", "Scope": "local"}, True),
    ],
)
async def test_the_network_must_be_an_overlay(network, refused):
    s = SwarmSpawner(docker_api=NetworkDocker(network))
    try:
        await s.check_network()
    except SpawnError as error:
        assert refused, "refused %r: %s" % (network, error)
        assert "overlay" in str(error)
    else:
        assert not refused, "accepted %r" % (network,)


@pytest.mark.parametrize(
    "option, value",
    [
        ("post_start_cmd", "echo started"),
        ("use_internal_ip", False),
        ("host_ip", "0.0.0.0"),
        ("links", {"db": "db"}),
        ("remove", False),
        ("boot_concurrency", 4),
        ("boot_slot_timeout", 30.0),
        ("container_view_resync_interval", 10.0),
        ("orphan_grace_period", 0.0),
        ("extra_host_config", {"shm_size": "1g"}),
        ("root_start", True),
        ("remove_volumes_on_delete", True),
        ("gpu_devices", ["0"]),
        ("extra_create_kwargs", {"working_dir": "/w", "domainname": "x", "volumes": ["/v"]}),
    ],
)
@pytest.mark.parametrize("section", ["SwarmSpawner", "DockerSpawner"])
def test_an_option_a_service_cannot_honour_is_refused_at_config_load_by_name(option, value, section):
    from traitlets import TraitError

    from hubfleet_spawner import check_config

    c = Config()
    c.JupyterHub.spawner_class = "hubfleet-swarm"
    setattr(getattr(c, section), option, value)
    with pytest.raises(TraitError, match="SwarmSpawner.%s" % option) as refused:
        check_config(c)
    if option == "extra_create_kwargs":
        assert "domainname, volumes" in str(refused.value)
    # The same configuration is fine for the DockerSpawner.
    c.JupyterHub.spawner_class = "hubfleet-docker"
    check_config(c)


def test_what_a_service_does_anyway_is_accepted():
    """The role's and dockerspawner's usual lines: remove=True, use_internal_ip=True, boot_concurrency=0."""
    from hubfleet_spawner import check_config

    c = Config()
    c.JupyterHub.spawner_class = "hubfleet_spawner.SwarmSpawner"
    c.DockerSpawner.remove = True
    c.DockerSpawner.use_internal_ip = True
    c.SwarmSpawner.boot_concurrency = 0
    c.SwarmSpawner.extra_create_kwargs = {"working_dir": "/home/jovyan", "hostname": "lab", "user": "1000"}
    c.SwarmSpawner.extra_host_config = lambda spawner: {}
    check_config(c)


async def test_a_callable_extra_host_config_is_refused_at_spawn_naming_the_option():
    s = spawner(extra_host_config=lambda sp: {"shm_size": "1g"})
    s.user = SimpleNamespace(name="alice")
    s.orm_spawner = SimpleNamespace(name="", server=None)
    s.get_env = lambda: {}
    with pytest.raises(SpawnError, match="SwarmSpawner.extra_host_config"):
        await s.resolve_settings("img", None)
