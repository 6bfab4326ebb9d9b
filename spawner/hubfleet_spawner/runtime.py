"""How a user server runs: the steps of the one spawn sequence (``DockerSpawner.start``).

``DockerSpawner.start`` resolves the image, checks the network, applies the pull policy
and resolves the configuration once into a ``ServerSettings``; then it calls a runtime's
steps, in this order::

    announce()                                  before anything is done
    async with assigned_devices(settings) as settings:   GPUs given to this server
        object_id = replace_stale(settings)     an id to reuse, or ""
        reuse(object_id)  or  object_id = create(settings)
        async with boot_slot():
            running = run(settings, object_id)  started and running
            ip, port = address(settings, running)
            ... the spawner waits until the server answers, calling check_alive(object_id)
        after_start(settings, object_id)

``ContainerRuntime`` (dockerspawner.py) runs a container on one engine;
``ServiceRuntime`` (swarmspawner.py) runs a one-replica swarm service. Each step raises
``SpawnError`` with a message for the user when the server cannot run.
"""

import contextlib


class Runtime:
    """The steps one kind of Docker object takes through a spawn (override them all
    but ``announce``, ``assigned_devices``, ``reuse``, ``boot_slot`` and ``after_start``). The spawn passes
    arguments by position, so an override names them as suits its object."""

    #: What the spawn page calls the object, and the progress when it is created.
    noun = "object"
    create_progress = 40

    def __init__(self, spawner):
        self.spawner = spawner

    def announce(self):
        """Say anything the user should know before this spawn begins."""

    @contextlib.asynccontextmanager
    async def assigned_devices(self, settings):
        """An async context yielding ``settings`` with the devices (GPUs) this server is
        given, held for it until the context ends (the spawn succeeded or failed)."""
        yield settings

    async def replace_stale(self, settings):
        """Remove objects of earlier runs of this server that must not be reused; return
        the id of one to start again ("" when a new one is to be created)."""
        raise NotImplementedError

    async def reuse(self, object_id, /):
        """Prepare a kept object (from ``replace_stale``) to be started again."""

    async def create(self, settings):
        """Create the object from ``settings``; return its id."""
        raise NotImplementedError

    def boot_slot(self):
        """An async context held from the start until the server answers."""
        return contextlib.AsyncExitStack()

    async def run(self, settings, object_id, /):
        """Start the object and return once it runs, with what ``address`` needs."""
        raise NotImplementedError

    async def address(self, settings, running, /):
        """(ip, port) where the hub reaches the server."""
        raise NotImplementedError

    async def check_alive(self, object_id, /):
        """Raise SpawnError (with the reason) if the object no longer runs."""
        raise NotImplementedError

    async def after_start(self, settings, object_id, /):
        """Run once the server answers (post_start_cmd)."""
