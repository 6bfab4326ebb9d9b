"""Docker access for every Hubfleet spawner: one client setup, one bounded pool.

The Docker SDK is blocking. Every call runs in a thread pool shared by all spawners
of a hub that talk to the same engine, so a slow image pull for one user occupies
one thread and never delays other users' spawns, stops or polls. The HTTP
connection pool is sized to the thread pool so threads never queue for a socket.
"""

import asyncio
import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import docker
from docker.utils import kwargs_from_env

DEFAULT_CONCURRENCY = 32


def client_settings(client_kwargs=None, tls_config=None):
    """The keyword arguments for ``docker.APIClient``: environment, then config.

    ``DOCKER_HOST``, ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH`` apply as for the
    docker CLI; ``client_kwargs`` and ``tls_config`` (as in dockerspawner) override.
    """
    settings = kwargs_from_env()
    if tls_config:
        settings["tls"] = docker.tls.TLSConfig(**tls_config)
    settings.update(client_kwargs or {})
    settings.setdefault("version", "auto")
    return settings


class BootSlots:
    """How many user servers boot at once on one engine.

    In a burst the engine's CPUs are the limit. Shared by every booting server, they
    make all of them ready together at the very end; taken in turns, the first servers
    are ready early and the last no later. A slot is held from the container's start
    until its server answers, and at most ``hold_at_most`` seconds, so a slow image
    never holds the others back for long.
    """

    def __init__(self, size):
        self.size = size
        self._semaphore = asyncio.Semaphore(size)

    @property
    def full(self):
        return self._semaphore.locked()

    @contextlib.asynccontextmanager
    async def slot(self, hold_at_most):
        await self._semaphore.acquire()
        released = False

        def release():
            nonlocal released
            if not released:
                released = True
                self._semaphore.release()

        timer = asyncio.get_running_loop().call_later(hold_at_most, release)
        try:
            yield
        finally:
            timer.cancel()
            release()


class DockerAPI:
    """A low-level Docker client whose calls are awaited, not blocked on."""

    _shared = {}
    _shared_lock = threading.Lock()

    def __init__(self, settings, concurrency=DEFAULT_CONCURRENCY):
        self.concurrency = concurrency
        self.client = docker.APIClient(max_pool_size=concurrency, **settings)
        self.executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hubfleet-docker")
        self._cpus = None
        self._boot_slots = {}

    @classmethod
    def shared(cls, client_kwargs=None, tls_config=None, concurrency=DEFAULT_CONCURRENCY):
        """The one ``DockerAPI`` for this engine and these settings, made on first use."""
        key = repr((sorted((client_kwargs or {}).items()), sorted((tls_config or {}).items()), concurrency))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(client_settings(client_kwargs, tls_config), concurrency)
            return cls._shared[key]

    async def run(self, func, *args, **kwargs):
        """Run a blocking callable in the pool and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(func, *args, **kwargs))

    async def call(self, method, *args, **kwargs):
        """Await ``docker.APIClient.<method>(*args, **kwargs)``."""
        return await self.run(getattr(self.client, method), *args, **kwargs)

    async def engine_cpus(self):
        """The engine's CPU count (asked once)."""
        if self._cpus is None:
            info = await self.call("info")
            self._cpus = int(info.get("NCPU") or os.cpu_count() or 1)
        return self._cpus

    def boot_slots(self, size):
        """The one BootSlots of ``size`` on this engine (None for no limit)."""
        if size <= 0:
            return None
        if size not in self._boot_slots:
            self._boot_slots[size] = BootSlots(size)
        return self._boot_slots[size]
