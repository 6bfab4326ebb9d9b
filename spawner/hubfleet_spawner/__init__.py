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

__all__ = [
    "DockerSpawner",
    "SpawnError",
    "SwarmSpawner",
    "SystemUserSpawner",
    "TEMPLATES_DIR",
    "__version__",
    "check_config",
]

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


def _spawner_class(value):
    """The class ``c.JupyterHub.spawner_class`` names (a class, an entry point or a dotted name)."""
    if not isinstance(value, str):
        return value
    from importlib.metadata import entry_points

    for entry_point in entry_points(group="jupyterhub.spawners"):
        if entry_point.name == value:
            return entry_point.load()
    from traitlets.utils.importstring import import_item

    return import_item(value)


def check_config(config):
    """Refuse, when the hub's configuration loads, what its Hubfleet spawner cannot honour.

    Call it at the end of jupyterhub_config.py (``hubfleet_spawner.check_config(c)``): it
    loads ``config`` into the configured spawner class as the hub does for each server, so
    an option the class refuses (a ``traitlets.TraitError`` naming it, e.g. a SwarmSpawner
    ``post_start_cmd``) stops the hub at start instead of failing users' spawns. Other
    spawner classes are left alone.
    """
    section = config.JupyterHub if "JupyterHub" in config else {}
    spawner_class = _spawner_class(section.get("spawner_class", "")) if section.get("spawner_class") else None
    if isinstance(spawner_class, type) and issubclass(spawner_class, __getattr__("DockerSpawner")):
        spawner_class(config=config)
