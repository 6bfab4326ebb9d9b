"""The hub's Docker API filter: the hub reaches the engine only through it.

``rules`` decides (pure logic, unit-tested), ``proxy`` serves it on a Unix socket,
``config`` builds the policy from the spawner's settings and refuses, when the hub
starts, ``extra_create_kwargs``/``extra_host_config`` the filter would refuse.

    python -m hubfleet_spawner.docker_filter --config filter.json --listen /run/hubfleet-filter/docker.sock
"""

from .rules import Policy, PolicyError, Refused, decide

__all__ = ["Policy", "PolicyError", "Refused", "decide"]
