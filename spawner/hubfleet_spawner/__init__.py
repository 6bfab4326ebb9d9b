"""Hubfleet's JupyterHub spawners for Docker hosts and Docker Swarm fleets."""

from .dockerspawner import DockerSpawner
from .errors import SpawnError
from .swarmspawner import SwarmSpawner
from .systemuserspawner import SystemUserSpawner

__version__ = "0.1.0"
__all__ = ["DockerSpawner", "SpawnError", "SwarmSpawner", "SystemUserSpawner", "__version__"]
