"""Hubfleet's JupyterHub spawners for Docker hosts and Docker Swarm fleets.

The spawner classes are imported on first use, so ``hubfleet_spawner.docker_filter``
(the hub's Docker API filter, a process of its own) loads neither JupyterHub nor the
Docker SDK.
"""

import importlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for readers and linters; at run time __getattr__ imports them
    from .dockerspawner import DockerSpawner
    from .errors import SpawnError
    from .swarmspawner import SwarmSpawner
    from .systemuserspawner import SystemUserSpawner

__version__ = "0.1.0"

# JupyterHub page templates that show what the spawner knows (why a server stopped):
# c.JupyterHub.template_paths = [hubfleet_spawner.TEMPLATES_DIR]
TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

__all__ = ["DockerSpawner", "SpawnError", "SwarmSpawner", "SystemUserSpawner", "TEMPLATES_DIR", "__version__"]

_LAZY = {
    "DockerSpawner": ".dockerspawner",
    "SpawnError": ".errors",
    "SwarmSpawner": ".swarmspawner",
    "SystemUserSpawner": ".systemuserspawner",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
