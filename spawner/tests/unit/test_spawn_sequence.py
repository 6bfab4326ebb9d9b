"""The one spawn sequence (DockerSpawner.start) drives any runtime through the same steps."""

from types import SimpleNamespace

import pytest

from hubfleet_spawner import DockerSpawner, SwarmSpawner
from hubfleet_spawner.errors import SpawnError
from hubfleet_spawner.runtime import Runtime


class RecordingRuntime(Runtime):
    """Records each step; ``reuse_id`` makes replace_stale offer an object to reuse."""

    noun = "thing"
    reuse_id = ""
    fail_in = None

    def __init__(self, spawner):
        super().__init__(spawner)
        self.steps = spawner.steps

    def _step(self, name, *args):
        self.steps.append((name,) + args)
        if name == self.fail_in:
            raise SpawnError("%s failed" % name)

    def announce(self):
        self._step("announce")

    async def replace_stale(self, settings):
        self._step("replace_stale", settings.name)
        return self.reuse_id

    async def reuse(self, object_id):
        self._step("reuse", object_id)

    async def create(self, settings):
        self._step("create", settings.image)
        return "new-id"

    async def run(self, settings, object_id):
        self._step("run", object_id)
        return {"ip": "10.0.0.9"}

    async def address(self, settings, running):
        self._step("address")
        return running["ip"], settings.port

    async def check_alive(self, object_id):
        self._step("check_alive", object_id)

    async def after_start(self, settings, object_id):
        self._step("after_start", object_id)


def spawner_with(runtime, cls=DockerSpawner):
    s = cls()
    s.runtime_class = runtime
    s.steps = []
    s.user = SimpleNamespace(name="alice")
    s.orm_spawner = SimpleNamespace(name="", server=None)
    s.get_env = lambda: {}
    s.get_args = lambda: []

    async def nothing(*args):
        s.steps.append(("check_network",) if not args else ("ensure_image", args[0]))
        return None

    async def answering(ip, port, check_alive):
        s.steps.append(("wait_until_answering", ip, port))
        await check_alive()

    s.check_network = nothing
    s.ensure_image = nothing
    s.wait_until_answering = answering
    s.watch_server = lambda: None
    return s


async def test_a_new_server_goes_through_every_step_in_order():
    s = spawner_with(RecordingRuntime)
    assert await s.start() == ("10.0.0.9", 8888)
    assert s.steps == [
        ("announce",),
        ("check_network",),
        ("ensure_image", "hubfleet/singleuser:latest"),
        ("replace_stale", "jupyter-alice"),
        ("create", "hubfleet/singleuser:latest"),
        ("run", "new-id"),
        ("address",),
        ("wait_until_answering", "10.0.0.9", 8888),
        ("check_alive", "new-id"),
        ("after_start", "new-id"),
    ]
    messages = [e["message"] for e in s._events]
    assert messages[0] == "Preparing hubfleet/singleuser:latest"
    assert "Creating the thing" in messages and messages[-1] == "Server is up"


async def test_a_kept_object_is_reused_not_created():
    class Reusing(RecordingRuntime):
        reuse_id = "old-id"

    s = spawner_with(Reusing)
    await s.start()
    assert ("reuse", "old-id") in s.steps and not any(step[0] == "create" for step in s.steps)
    assert ("run", "old-id") in s.steps


async def test_a_failing_step_fails_the_spawn_and_stops_the_sequence():
    class FailingRun(RecordingRuntime):
        fail_in = "run"

    s = spawner_with(FailingRun)
    with pytest.raises(SpawnError, match="run failed"):
        await s.start()
    assert s.steps[-1] == ("run", "new-id")
    assert s._starting is False


def test_each_spawner_class_names_its_runtime():
    from hubfleet_spawner.dockerspawner import ContainerRuntime
    from hubfleet_spawner.swarmspawner import ServiceRuntime

    assert DockerSpawner.runtime_class is ContainerRuntime
    assert SwarmSpawner.runtime_class is ServiceRuntime
    assert "_start" not in vars(SwarmSpawner) and "start" not in vars(SwarmSpawner)
