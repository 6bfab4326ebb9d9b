"""Stopping a server: its stop signal, its death awaited on the view (no Docker call held
for the grace period), SIGKILL only when the grace period is over."""

import asyncio
from types import SimpleNamespace

import docker.errors

from hubfleet_spawner import DockerSpawner
from hubfleet_spawner.reflector import ContainerState, ContainerView


class Engine:
    """The calls a stop makes; a container that dies ``dies_after`` seconds after its signal."""

    def __init__(self, view, dies_after):
        self.view = view
        self.dies_after = dies_after
        self.calls = []
        self.targets = []

    async def call(self, method, *args, **kwargs):
        self.calls.append((method, kwargs))
        self.targets.append(args[0] if args else None)
        if method == "kill" and self.dies_after is not None:
            loop = asyncio.get_running_loop()
            die = {"Action": "die", "id": args[0], "Actor": {"ID": args[0], "Attributes": {"exitCode": "0"}}}
            loop.call_later(self.dies_after, self.view._apply_event, die)
        if method == "containers":
            raise docker.errors.NotFound("no listing in this test")
        return None


class ViewSpawner(DockerSpawner):
    view = None  # an instance attribute here, not the shared view of a real engine


def stopping(dies_after, grace, stop_signal="", remove=False):
    view = ContainerView(None, "hub", SimpleNamespace(warning=print))
    view.start = view._ensure_running = lambda: None
    view._synced = asyncio.Event()
    view._synced.set()
    ada = {"hubfleet.user": "ada", "hubfleet.server": ""}
    signal = {"hubfleet.stop-signal": stop_signal} if stop_signal else {}
    view.note(ContainerState("c1", "jupyter-ada", "running", labels=dict(ada, **signal)))
    view.note(ContainerState("old", "jupyter-ada", "exited", labels=ada))  # an earlier run's
    view.note(ContainerState("b1", "jupyter-bob", "running", labels=dict(ada, **{"hubfleet.user": "bob"})))
    view.api = Engine(view, dies_after)
    spawner = ViewSpawner(stop_timeout=grace, remove=remove, docker_api=view.api)
    spawner.view = view
    spawner.container_id = "c1"
    spawner.user = SimpleNamespace(name="ada")
    return spawner


async def test_a_server_that_exits_on_its_signal_is_not_killed_and_the_stop_ends_with_it():
    spawner = stopping(dies_after=0.05, grace=5)
    started = asyncio.get_running_loop().time()
    await spawner.stop()
    assert asyncio.get_running_loop().time() - started < 1
    assert spawner.docker.calls == [("kill", {"signal": "SIGTERM"}), ("stop", {"timeout": 0})]  # a no-op now


async def test_a_server_slower_than_the_grace_period_is_killed_then():
    spawner = stopping(dies_after=None, grace=1, stop_signal="SIGINT")
    started = asyncio.get_running_loop().time()
    await spawner.stop()
    assert 1 <= asyncio.get_running_loop().time() - started < 2
    assert spawner.docker.calls[0] == ("kill", {"signal": "SIGINT"})  # the image's STOPSIGNAL, from its label
    assert spawner.docker.calls[-1] == ("stop", {"timeout": 0})
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert spawner.view._stop_waiters == {}


async def test_with_remove_the_forced_removal_kills_and_earlier_runs_go_too_without_a_listing():
    spawner = stopping(dies_after=None, grace=1, remove=True)
    await spawner.stop()
    calls = list(zip([c[0] for c in spawner.docker.calls], spawner.docker.targets))
    assert calls == [("kill", "c1"), ("remove_container", "c1"), ("remove_container", "old")]  # bob's stays
    assert spawner.docker.calls[1][1] == {"force": True}
    assert spawner.container_id == ""


async def test_stop_now_kills_at_once():
    spawner = stopping(dies_after=None, grace=5)
    await spawner.stop(now=True)
    assert spawner.docker.calls == [("stop", {"timeout": 0})]
