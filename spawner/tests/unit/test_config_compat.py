"""A dockerspawner 14 configuration loads unchanged and means the same."""

import warnings
from importlib.metadata import entry_points

import pytest
from traitlets.config import Config

from hubfleet_spawner import DockerSpawner


def dockerspawner_config():
    c = Config()
    c.DockerSpawner.image = "example/lab:4"
    c.DockerSpawner.allowed_images = {"Lab": "example/lab:4", "R": "example/r:4"}
    c.DockerSpawner.pull_policy = "Never"
    c.DockerSpawner.prefix = "jh"
    c.DockerSpawner.name_template = "{prefix}-{username}-{servername}"
    c.DockerSpawner.volumes = {"jupyterhub-user-{username}": "/home/jovyan/work"}
    c.DockerSpawner.read_only_volumes = {"/srv/data": "/data"}
    c.DockerSpawner.notebook_dir = "/home/jovyan/work"
    c.DockerSpawner.network_name = "jupyterhub"
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.host_ip = "0.0.0.0"
    c.DockerSpawner.port = 9999
    c.DockerSpawner.extra_create_kwargs = {"user": "root"}
    c.DockerSpawner.extra_host_config = {"shm_size": "1g"}
    c.DockerSpawner.mem_limit = "2G"
    c.DockerSpawner.cpu_limit = 1.5
    c.DockerSpawner.remove = True
    c.DockerSpawner.post_start_cmd = "echo started"
    c.DockerSpawner.client_kwargs = {"timeout": 30}
    c.DockerSpawner.debug = True
    c.Spawner.start_timeout = 90
    c.Spawner.cmd = ["jupyterhub-singleuser"]
    c.Spawner.environment = {"GRANT_SUDO": "no"}
    return c


def test_a_dockerspawner_config_loads_and_maps():
    spawner = DockerSpawner(config=dockerspawner_config())
    assert spawner.image == "example/lab:4"
    assert spawner.allowed_images == {"Lab": "example/lab:4", "R": "example/r:4"}
    assert spawner.pull_policy == "never"
    assert spawner.prefix == "jh"
    assert spawner.name_template == "{prefix}-{username}-{servername}"
    assert spawner.volumes == {"jupyterhub-user-{username}": "/home/jovyan/work"}
    assert spawner.network_name == "jupyterhub" and spawner.use_internal_ip
    assert spawner.port == 9999 and spawner.host_ip == "0.0.0.0"
    assert spawner.mem_limit == 2 * 1024**3 and spawner.cpu_limit == 1.5
    assert spawner.extra_host_config == {"shm_size": "1g"}
    assert spawner.start_timeout == 90 and spawner.cmd == ["jupyterhub-singleuser"]
    assert spawner.client_kwargs == {"timeout": 30}


@pytest.mark.parametrize(
    "old, new, value",
    [
        ("image_whitelist", "allowed_images", {"A": "a:1"}),
        ("container_image", "image", "old/image:1"),
        ("container_prefix", "prefix", "old"),
        ("container_name_template", "name_template", "{prefix}-{username}"),
        ("remove_containers", "remove", False),
        ("container_ip", "host_ip", "10.0.0.1"),
        ("container_port", "port", 7777),
    ],
)
def test_deprecated_names_warn_and_map(old, new, value, caplog):
    c = Config()
    setattr(c.DockerSpawner, old, value)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        spawner = DockerSpawner(config=c)
    assert getattr(spawner, new) == value
    assert any(old in r.getMessage() and new in r.getMessage() for r in caplog.records)


def test_callables_are_accepted_for_limits_and_extra_config():
    c = Config()
    c.DockerSpawner.mem_limit = lambda spawner: "1G"
    c.DockerSpawner.cpu_limit = lambda spawner: 2.0
    c.DockerSpawner.extra_create_kwargs = lambda spawner: {"working_dir": "/tmp"}
    c.DockerSpawner.allowed_images = lambda spawner: ["a:1"]
    spawner = DockerSpawner(config=c)
    assert callable(spawner.mem_limit) and callable(spawner.allowed_images)


def test_safe_defaults():
    spawner = DockerSpawner()
    assert spawner.pull_policy == "ifnotpresent"
    assert spawner.allow_root is False
    assert spawner.pids_limit > 0
    assert spawner.remove_volumes_on_delete is False
    assert spawner.allowed_images == {}


def test_entry_point_is_registered():
    names = {ep.name: ep.value for ep in entry_points(group="jupyterhub.spawners")}
    assert names.get("hubfleet-docker") == "hubfleet_spawner:DockerSpawner"


async def test_without_cmd_the_image_command_runs_with_the_spawner_arguments():
    image_info = {"Config": {"Cmd": ["hubfleet-singleuser"]}}
    spawner = DockerSpawner()
    assert spawner.cmd is None
    # No arguments: leave the command to the image.
    spawner.get_args = lambda: []
    assert await spawner.container_command(image_info) is None
    spawner.get_args = lambda: ["--debug"]
    assert await spawner.container_command(image_info) == ["hubfleet-singleuser", "--debug"]
    configured = DockerSpawner(config=Config({"Spawner": {"cmd": ["jupyter-labhub"]}}))
    configured.get_args = lambda: ["--debug"]
    assert await configured.container_command(image_info) == ["jupyter-labhub", "--debug"]


def test_escape_takes_dockerspawners_scheme_names_and_refuses_others():
    from traitlets import TraitError

    from hubfleet_spawner import naming

    spawner = DockerSpawner(config=Config({"DockerSpawner": {"escape": "escape"}}))
    assert spawner.escape is naming.escape_dockerspawner
    assert spawner.escape("a-b") == "a-2db"
    with pytest.raises(TraitError, match="DockerSpawner.escape"):
        DockerSpawner(escape="percent")
