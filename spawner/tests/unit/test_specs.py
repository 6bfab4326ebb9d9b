"""The whole container-create arguments and the whole service spec, for representative
configurations: settings resolved once from a spawner's config, then the pure builders."""

import dataclasses
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from hubfleet_spawner import DockerSpawner, SwarmSpawner
from hubfleet_spawner.specs import (
    Limits,
    ServerSettings,
    container_create_args,
    freeze,
    service_spec,
    thaw,
)

IMAGE = "example/lab:1"
NON_ROOT_IMAGE = {"Id": "sha256:abc", "Config": {"User": "jovyan", "Cmd": ["start-lab"]}}
ROOT_IMAGE = {"Id": "sha256:def", "Config": {"User": "", "Cmd": ["start-lab"]}}
ENV = {"JUPYTERHUB_API_TOKEN": "token"}


def server_labels(user="alice", server=""):
    return {
        "hubfleet.hub": "jupyter",
        "hubfleet.kind": "user-server",
        "hubfleet.user": user,
        "hubfleet.server": server,
    }


def volume_labels(user="alice", server=""):
    return dict(server_labels(user, server), **{"hubfleet.kind": "user-volume"})


class Nodes:
    """A swarm manager that answers the one question placement asks."""

    def __init__(self, workers=()):
        self.workers = list(workers)

    async def call(self, method, **kwargs):
        assert method == "nodes", method
        return self.workers


def make(cls, user="alice", server="", **config):
    c = Config()
    for key, value in config.items():
        setattr(getattr(c, cls.__name__), key, value)
    spawner = cls(config=c, docker_api=Nodes())
    spawner.user = SimpleNamespace(name=user)
    spawner.orm_spawner = SimpleNamespace(name=server, server=None)
    spawner.get_env = lambda: dict(ENV, MEM_LIMIT="stale")
    spawner.get_args = lambda: []
    return spawner


async def settings_of(cls, image_info=NON_ROOT_IMAGE, user="alice", server="", **config):
    spawner = make(cls, user, server, **config)
    return await spawner.resolve_settings(IMAGE, image_info)


def container_defaults(**host_config):
    """create_container's arguments for alice's default server with the default config."""
    host = {
        "binds": {},
        "network_mode": "bridge",
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "pids_limit": 1024,
        "port_bindings": {8888: ("127.0.0.1",)},
    }
    host.update(host_config)
    return {
        "image": IMAGE,
        "name": "jupyter-alice",
        "environment": ["JUPYTERHUB_API_TOKEN=token"],
        "labels": server_labels(),
        "ports": [8888],
        "user": "jovyan",
        "host_config": {k: v for k, v in host.items() if v is not None},
    }


def service_defaults(container=None, resources=None, **task):
    """create_service's arguments for alice's default server with the default config."""
    container_spec = {
        "Image": IMAGE,
        "Env": ["JUPYTERHUB_API_TOKEN=token"],
        "Labels": server_labels(),
        "Mounts": [],
        "StopGracePeriod": 5_000_000_000,
        "User": "jovyan",
        "CapabilityDrop": ["ALL"],
    }
    container_spec.update(container or {})
    template = {
        "ContainerSpec": {k: v for k, v in container_spec.items() if v is not None},
        "Resources": resources or {"Limits": {"Pids": 1024}, "Reservations": {}},
        "RestartPolicy": {"Condition": "none"},
        "Placement": {"Constraints": []},
        "Networks": [{"Target": "jupyterhub"}],
    }
    template.update(task)
    return {
        "task_template": template,
        "name": "jupyter-alice",
        "labels": server_labels(),
        "mode": {"Replicated": {"Replicas": 1}},
        "endpoint_spec": {"Mode": "dnsrr"},
    }


# --- default ---------------------------------------------------------------------


async def test_default_container():
    assert container_create_args(await settings_of(DockerSpawner)) == container_defaults()


async def test_default_service():
    assert service_spec(await settings_of(SwarmSpawner)) == service_defaults()


async def test_settings_are_immutable_and_resolved_once():
    settings = await settings_of(DockerSpawner, volumes={"jupyter-user-{username}": "/home/jovyan/work"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.user = "root"
    with pytest.raises(TypeError):
        settings.binds["/etc"] = {"bind": "/etc", "mode": "rw"}
    assert settings.named_volumes == ("jupyter-user-alice",)
    # JupyterHub's stale limit variables are replaced by the resolved limits.
    assert "MEM_LIMIT" not in settings.environment


# --- limits and guarantees -----------------------------------------------------------

LIMITED = dict(mem_limit="2G", cpu_limit=1.5, mem_guarantee="1G", cpu_guarantee=0.5, pids_limit=256)


def limited_environment(mem_limit):
    """The limit variables the server sees with LIMITED (JupyterHub's names)."""
    limits = "MEM_LIMIT=%d CPU_LIMIT=1.5 MEM_GUARANTEE=%d CPU_GUARANTEE=0.5" % (mem_limit, 1024**3)
    return ["JUPYTERHUB_API_TOKEN=token"] + limits.split()


async def test_limits_and_guarantees_on_a_container():
    settings = await settings_of(DockerSpawner, **LIMITED)
    expected = container_defaults(
        pids_limit=256,
        mem_limit=2 * 1024**3,
        nano_cpus=1_500_000_000,
        mem_reservation=1024**3,
        cpu_shares=512,
    )
    expected["environment"] = limited_environment(mem_limit=2 * 1024**3)
    assert container_create_args(settings) == expected


async def test_limits_and_guarantees_on_a_service_are_limits_and_reservations():
    settings = await settings_of(SwarmSpawner, **dict(LIMITED, mem_limit=lambda spawner: "512M"))
    expected = service_defaults(
        resources={
            "Limits": {"MemoryBytes": 512 * 1024**2, "NanoCPUs": 1_500_000_000, "Pids": 256},
            "Reservations": {"MemoryBytes": 1024**3, "NanoCPUs": 500_000_000},
        },
        container={"Env": limited_environment(mem_limit=512 * 1024**2)},
    )
    assert service_spec(settings) == expected


async def test_no_pids_limit_when_turned_off():
    settings = await settings_of(DockerSpawner, pids_limit=-1)
    assert container_create_args(settings) == container_defaults(pids_limit=None)


# --- named servers -------------------------------------------------------------------


async def test_a_named_server_gets_its_own_name_labels_and_server_scoped_volumes():
    config = dict(volumes={"jupyter-{username}-{servername}": "/home/jovyan/work"})
    settings = await settings_of(DockerSpawner, server="gpu 1", **config)
    expected = container_defaults(binds={"jupyter-alice-gpu_201": {"bind": "/home/jovyan/work", "mode": "rw"}})
    expected["name"] = "jupyter-alice--gpu_201"
    expected["labels"] = server_labels(server="gpu 1")
    assert container_create_args(settings) == expected
    assert thaw(settings.volume_labels) == volume_labels(server="gpu 1")

    service = service_spec(await settings_of(SwarmSpawner, server="gpu 1", **config))
    assert service["name"] == "jupyter-alice--gpu_201"
    assert service["labels"] == server_labels(server="gpu 1")
    assert service["task_template"]["ContainerSpec"]["Mounts"] == [
        {
            "Type": "volume",
            "Source": "jupyter-alice-gpu_201",
            "Target": "/home/jovyan/work",
            "ReadOnly": False,
            "VolumeOptions": {"Labels": volume_labels(server="gpu 1")},
        }
    ]


# --- volumes --------------------------------------------------------------------------

VOLUMES = dict(
    volumes={"jupyter-user-{username}": "/home/jovyan/work"},
    read_only_volumes={"/srv/data": "/data", "shared-{prefix}": "/shared"},
)


async def test_read_only_volumes_on_a_container():
    settings = await settings_of(DockerSpawner, network_name="jupyterhub", use_internal_ip=True, **VOLUMES)
    expected = container_defaults(
        binds={
            "jupyter-user-alice": {"bind": "/home/jovyan/work", "mode": "rw"},
            "/srv/data": {"bind": "/data", "mode": "ro"},
            "shared-jupyter": {"bind": "/shared", "mode": "ro"},
        },
        network_mode="jupyterhub",
        port_bindings=None,
    )
    expected["networking_config"] = {"jupyterhub": {}}
    assert container_create_args(settings) == expected


async def test_read_only_volumes_and_a_volume_driver_on_a_service():
    settings = await settings_of(
        SwarmSpawner,
        volume_driver="local",
        volume_driver_options={"type": "nfs", "device": ":/export/{username}"},
        **VOLUMES,
    )
    driver = {"Name": "local", "Options": {"type": "nfs", "device": ":/export/alice"}}
    named = {"Labels": volume_labels(), "DriverConfig": driver}
    mounts = [
        {"Type": "volume", "Source": "jupyter-user-alice", "Target": "/home/jovyan/work", "ReadOnly": False,
         "VolumeOptions": named},
        {"Type": "bind", "Source": "/srv/data", "Target": "/data", "ReadOnly": True},
        {"Type": "volume", "Source": "shared-jupyter", "Target": "/shared", "ReadOnly": True, "VolumeOptions": named},
    ]
    assert service_spec(settings) == service_defaults(container={"Mounts": mounts})


# --- root ----------------------------------------------------------------------------


async def test_a_root_image_runs_as_default_user_unless_root_is_allowed():
    settings = await settings_of(DockerSpawner, image_info=ROOT_IMAGE)
    assert container_create_args(settings) == dict(container_defaults(), user="1000:100")

    allowed = await settings_of(DockerSpawner, image_info=ROOT_IMAGE, allow_root=True)
    # Root keeps the engine's capabilities, never no-new-privileges or the limits.
    expected = container_defaults(cap_drop=None)
    del expected["user"]  # the image's own user
    assert container_create_args(allowed) == expected
    service = service_spec(await settings_of(SwarmSpawner, image_info=ROOT_IMAGE, allow_root=True))
    assert service == service_defaults(container={"User": None, "CapabilityDrop": None})


async def test_root_start_keeps_only_the_capabilities_to_switch_user():
    settings = await settings_of(DockerSpawner, image_info=ROOT_IMAGE, root_start=True)
    expected = container_defaults(cap_add=["CHOWN", "SETUID", "SETGID"])
    expected["user"] = "0"
    assert container_create_args(settings) == expected


async def test_extra_create_kwargs_user_of_root_needs_allow_root():
    from hubfleet_spawner.errors import SpawnError

    with pytest.raises(SpawnError, match="allow_root"):
        await settings_of(DockerSpawner, extra_create_kwargs={"user": "root"})
    settings = await settings_of(DockerSpawner, extra_create_kwargs={"user": "root"}, allow_root=True)
    assert container_create_args(settings)["user"] == "root"


# --- extra configuration ---------------------------------------------------------------


async def test_extra_host_config_overrides_and_extra_create_kwargs_are_rendered():
    settings = await settings_of(
        DockerSpawner,
        extra_host_config={"shm_size": "1g", "pids_limit": 64},
        extra_create_kwargs=lambda spawner: {"working_dir": "/home/{username}", "hostname": "{username}"},
    )
    expected = container_defaults(shm_size="1g", pids_limit=64)
    expected.update(working_dir="/home/alice", hostname="alice")
    assert container_create_args(settings) == expected


async def test_extra_create_kwargs_that_a_service_honours_become_container_spec_keys():
    settings = await settings_of(
        SwarmSpawner, extra_create_kwargs={"working_dir": "/home/{username}", "hostname": "{username}"}
    )
    assert service_spec(settings) == service_defaults(container={"Dir": "/home/alice", "Hostname": "alice"})


# --- the builders alone ------------------------------------------------------------------


def test_the_builders_need_no_spawner_and_share_one_limit_mapping():
    settings = ServerSettings.create(
        image="img",
        name="srv",
        labels={"a": "b"},
        user="1000",
        limits=Limits(mem_limit=100, cpu_limit=2.0, pids_limit=10),
        network="net",
    )
    host = container_create_args(settings)["host_config"]
    resources = service_spec(settings)["task_template"]["Resources"]
    assert (host["mem_limit"], host["nano_cpus"], host["pids_limit"]) == (100, 2_000_000_000, 10)
    assert resources == {"Limits": {"MemoryBytes": 100, "NanoCPUs": 2_000_000_000, "Pids": 10}, "Reservations": {}}


def test_freeze_and_thaw_round_trip():
    value = {"a": [1, {"b": (2, 3)}]}
    frozen = freeze(value)
    with pytest.raises(TypeError):
        frozen["a"] = 1
    assert thaw(frozen) == {"a": [1, {"b": [2, 3]}]}



# --- the host account (SystemUserSpawner) -------------------------------------------------


async def test_a_system_user_server_runs_as_the_host_account_looked_up_once(monkeypatch):
    import pwd

    from hubfleet_spawner import SystemUserSpawner

    lookups = []
    account = pwd.struct_passwd(("alice", "x", 1234, 2345, "", "/srv/homes/alice", "/bin/sh"))
    monkeypatch.setattr(pwd, "getpwnam", lambda name: lookups.append(name) or account)
    settings = await settings_of(SystemUserSpawner, image_info=ROOT_IMAGE)
    assert lookups == ["alice"]
    expected = container_defaults(binds={"/srv/homes/alice": {"bind": "/home/alice", "mode": "rw"}})
    expected.update(
        user="1234:2345",
        working_dir="/home/alice",
        environment=[
            "JUPYTERHUB_API_TOKEN=token",
            "NB_USER=alice",
            "NB_UID=1234",
            "NB_GID=2345",
            "USER=alice",
            "HOME=/home/alice",
        ],
    )
    assert container_create_args(settings) == expected


# --- GPUs ------------------------------------------------------------------------------

GPU_REQUEST = {"driver": "nvidia", "device_ids": ["1", "2"], "capabilities": [["gpu"]]}


async def test_gpus_on_a_container_are_a_device_request_of_the_assigned_ids_and_a_label():
    settings = await settings_of(DockerSpawner, gpus=2, gpu_devices=["0", "1", "2"])
    assert settings.gpus == 2 and settings.gpu_ids == ()
    expected = container_defaults(device_requests=[GPU_REQUEST])
    expected["labels"] = dict(server_labels(), **{"hubfleet.gpus": "1,2"})
    assert container_create_args(settings.with_gpus(("1", "2"))) == expected
    # No GPUs asked: no device request, no label.
    assert container_create_args(await settings_of(DockerSpawner, gpu_devices=["0"])) == container_defaults()


async def test_gpus_on_a_service_are_a_generic_resource_reservation():
    settings = await settings_of(SwarmSpawner, gpus=lambda spawner: 1, gpu_resource_kind="gpu")
    expected = service_defaults(
        resources={"Limits": {"Pids": 1024},
                   "Reservations": {"GenericResources": [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}]}},
    )
    assert service_spec(settings) == expected


async def test_a_gpu_count_that_is_not_a_whole_number_fails_the_spawn():
    from hubfleet_spawner.errors import SpawnError

    for count in (-1, 1.5, "2", True):
        with pytest.raises(SpawnError, match="whole number of GPUs"):
            await settings_of(DockerSpawner, gpus=lambda spawner, count=count: count)


async def test_a_stop_signal_other_than_sigterm_is_kept_in_a_label():
    image = {"Id": "sha256:abc", "Config": {"User": "jovyan", "StopSignal": "SIGINT"}}
    assert (await settings_of(DockerSpawner, image_info=image)).labels["hubfleet.stop-signal"] == "SIGINT"
    configured = await settings_of(DockerSpawner, image_info=image, extra_create_kwargs={"stop_signal": "SIGQUIT"})
    assert configured.labels["hubfleet.stop-signal"] == "SIGQUIT"
    sigterm = dict(image, Config={"User": "jovyan", "StopSignal": "SIGTERM"})
    assert "hubfleet.stop-signal" not in (await settings_of(DockerSpawner, image_info=sigterm)).labels
