"""GPUs on one host: the assignment rule, and the container runtime's step that holds
them for a spawn (two users asking at once get different devices; a shortage fails the
spawn with the reason; a restarted hub reads what is held from the view's labels)."""

import asyncio
from types import SimpleNamespace

import pytest

from hubfleet_spawner import DockerSpawner
from hubfleet_spawner.dockerspawner import ContainerRuntime
from hubfleet_spawner.errors import SpawnError
from hubfleet_spawner.gpus import GPUAssigner, GPUShortage, assign_gpus, held_gpus
from hubfleet_spawner.reflector import ContainerState
from hubfleet_spawner.specs import ServerSettings

INVENTORY = ["0", "1", "2", "3"]


@pytest.mark.parametrize("count, held, prefer, expected", [
    (0, set(), (), ()),
    (1, set(), (), ("0",)),
    (2, {"0", "2"}, (), ("1", "3")),
    (1, {"0"}, ("3",), ("3",)),
    (2, set(), ("2", "9"), ("2", "0")),
    (4, set(), (), ("0", "1", "2", "3")),
])
def test_the_first_free_gpus_are_assigned_preferred_ones_first(count, held, prefer, expected):
    assert assign_gpus(INVENTORY, count, held, prefer) == expected


def test_a_shortage_names_how_many_are_asked_free_and_on_the_host():
    with pytest.raises(GPUShortage, match=r"asks for 2 GPUs, but only 1 of this host's 4 is free"):
        assign_gpus(INVENTORY, 2, {"0", "1", "2"})
    with pytest.raises(GPUShortage, match=r"asks for 1 GPU, but only 0 of this host's 4 are free"):
        assign_gpus(INVENTORY, 1, set(INVENTORY))
    with pytest.raises(GPUShortage, match="gpu_devices is empty"):
        assign_gpus([], 1, set())


def test_the_label_round_trips_and_missing_labels_hold_nothing():
    settings = ServerSettings.create(image="i", name="n", labels={"a": "b"}).with_gpus(("GPU-1", "GPU-2"))
    assert held_gpus(settings.labels) == ("GPU-1", "GPU-2")
    assert dict(settings.with_gpus(()).labels) == {"a": "b"}
    assert held_gpus({}) == held_gpus(None) == ()


def running(name, gpus, status="running"):
    return ContainerState(name, name, status, labels={"hubfleet.gpus": gpus} if gpus else {})


def test_only_running_containers_and_other_spawns_reservations_hold_gpus():
    assigner = GPUAssigner()
    states = [running("a", "0"), running("b", "1", status="exited"), running("c", ""), running("d", "2,3")]
    assert assigner.held(states, "new") == {"0", "2", "3"}
    assert assigner.assign(states, "e", INVENTORY, 1) == ("1",)
    assert assigner.held(states, "new") == {"0", "1", "2", "3"}
    assert assigner.held(states, "e") == {"0", "2", "3"}  # its own reservation does not count against it
    assigner.release("e")
    assert assigner.held(states, "new") == {"0", "2", "3"}


class View:
    """The shared view as the GPU step reads it: every container it knows."""

    def __init__(self, states=()):
        self.states = list(states)

    async def all(self):
        await asyncio.sleep(0)  # a real listing may be awaited: other spawns run meanwhile
        return list(self.states)


class ViewSpawner(DockerSpawner):
    view = None  # an instance attribute here, not the shared view of a real engine


def spawner_for(user, view, **config):
    spawner = ViewSpawner(**dict({"gpu_devices": ["0", "1"]}, **config))
    spawner.view = view
    spawner.user = SimpleNamespace(name=user)
    return spawner


def settings_for(user, gpus=1):
    return ServerSettings.create(image="img", name="jupyter-" + user, labels={"hubfleet.user": user}, gpus=gpus)


async def hold(spawner, settings, entered, leave):
    async with ContainerRuntime(spawner).assigned_devices(settings) as given:
        entered.set_result(given)
        await leave.wait()


async def test_two_users_spawning_at_once_get_different_gpus_and_a_third_is_told_why_not():
    view = View()
    loop = asyncio.get_running_loop()
    entered = [loop.create_future(), loop.create_future()]
    leave = asyncio.Event()
    spawns = [asyncio.ensure_future(hold(spawner_for(u, view), settings_for(u), e, leave))
              for u, e in zip(("ada", "bob"), entered)]
    given = [await e for e in entered]
    assert sorted(g.gpu_ids for g in given) == [("0",), ("1",)]
    assert {g.labels["hubfleet.gpus"] for g in given} == {"0", "1"}
    carol = spawner_for("carol", view)
    with pytest.raises(SpawnError, match="only 0 of this host's 2 are free"):
        async with ContainerRuntime(carol).assigned_devices(settings_for("carol")):
            pass
    # Their servers run now (the view has their labelled containers): the spawns end.
    view.states = [running("jupyter-" + u, g.labels["hubfleet.gpus"]) for u, g in zip(("ada", "bob"), given)]
    leave.set()
    await asyncio.gather(*spawns)
    with pytest.raises(SpawnError, match="only 0 of this host's 2 are free"):
        async with ContainerRuntime(carol).assigned_devices(settings_for("carol")):
            pass
    # Ada's server stops: carol gets its GPU, and the spawn page says which.
    view.states[0].status = "exited"
    adas_gpu = view.states[0].labels["hubfleet.gpus"]
    async with ContainerRuntime(carol).assigned_devices(settings_for("carol")) as given:
        assert given.gpu_ids == (adas_gpu,)
    assert carol._events[-1]["message"] == "Assigned GPU %s of this host" % adas_gpu


async def test_a_failed_spawn_gives_its_gpus_back():
    view = View()
    ada = spawner_for("ada", view, gpu_devices=["0"])
    with pytest.raises(RuntimeError):
        async with ContainerRuntime(ada).assigned_devices(settings_for("ada")):
            raise RuntimeError("the container would not start")
    async with ContainerRuntime(spawner_for("bob", view, gpu_devices=["0"])).assigned_devices(settings_for("bob")) as given:
        assert given.gpu_ids == ("0",)


async def test_after_a_hub_restart_the_running_servers_labels_say_what_is_held():
    view = View([running("jupyter-ada", "1")])
    async with ContainerRuntime(spawner_for("bob", view)).assigned_devices(settings_for("bob")) as given:
        assert given.gpu_ids == ("0",)
    # Ada's own spawn again (a kept container): it gets the GPU it held.
    async with ContainerRuntime(spawner_for("ada", view)).assigned_devices(settings_for("ada")) as given:
        assert given.gpu_ids == ("1",)


async def test_a_server_without_gpus_does_not_read_the_view():
    spawner = spawner_for("ada", None)
    async with ContainerRuntime(spawner).assigned_devices(settings_for("ada", gpus=0)) as given:
        assert given.gpu_ids == () and "hubfleet.gpus" not in given.labels
