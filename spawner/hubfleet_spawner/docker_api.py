"""Docker access for every Hubfleet spawner: one client setup, one bounded pool.

The Docker SDK is blocking. Every call runs in a thread pool shared by all spawners
of a hub that talk to the same engine, so a slow image pull for one user occupies
one thread and never delays other users' spawns, stops or polls. The HTTP
connection pool is sized to the thread pool so threads never queue for a socket.
"""

import asyncio
import functools
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


class DockerAPI:
    """A low-level Docker client whose calls are awaited, not blocked on."""

    _shared = {}
    _shared_lock = threading.Lock()

    def __init__(self, settings, concurrency=DEFAULT_CONCURRENCY):
        self.concurrency = concurrency
        self.client = docker.APIClient(max_pool_size=concurrency, **settings)
        self.executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hubfleet-docker")

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
