"""GPUs on one Docker host: which of the host's devices a new server gets.

The host's GPUs are ``DockerSpawner.gpu_devices`` (device ids as the NVIDIA runtime
takes them: indexes such as "0" or UUIDs). A server that asks for N of them gets N that
no other running server of this hub holds. What is held is read from the shared
container view: every user-server container carries the ids it was given in the label
``hubfleet.gpus``, so a restarted hub knows at once what its running servers hold.
Spawns in progress hold their ids as reservations until their container runs (and is in
the view), so two users asking at the same moment never get the same device.

``assign_gpus`` is the pure rule; ``GPUAssigner`` adds the view and the reservations.
"""

from .labels import LABEL_GPUS


class GPUShortage(Exception):
    """Not enough free GPUs for a server; the message is for the user."""


def gpu_label(device_ids):
    """The ``hubfleet.gpus`` label value of a server given ``device_ids``."""
    return ",".join(device_ids)


def held_gpus(labels):
    """The device ids a container's labels say it holds."""
    value = (labels or {}).get(LABEL_GPUS) or ""
    return tuple(d for d in value.split(",") if d)


def assign_gpus(inventory, count, held, prefer=()):
    """``count`` device ids of ``inventory`` that are not in ``held``, in inventory order,
    ``prefer`` (the ids this server held last, e.g. a kept container) first.

    Raises GPUShortage naming how many the host has and how many are free.
    """
    if count <= 0:
        return ()
    if not inventory:
        raise GPUShortage(
            "This server asks for %d GPU%s, but this host has no GPUs for user servers "
            "(DockerSpawner.gpu_devices is empty)." % (count, "" if count == 1 else "s")
        )
    free = [d for d in inventory if d not in held]
    if len(free) < count:
        raise GPUShortage(
            "This server asks for %d GPU%s, but only %d of this host's %d %s free: the others are "
            "in use by other servers. Try again when one is stopped, or choose a profile with fewer GPUs."
            % (count, "" if count == 1 else "s", len(free), len(inventory), "is" if len(free) == 1 else "are")
        )
    ordered = [d for d in free if d in prefer] + [d for d in free if d not in prefer]
    return tuple(ordered[:count])


class GPUAssigner:
    """The GPUs of one engine among one hub's servers (one per container view)."""

    def __init__(self):
        # container name -> ids, for spawns between assignment and their container running
        self._reserved = {}

    @classmethod
    def of(cls, view):
        """The one assigner of ``view`` (made on first use)."""
        assigner = getattr(view, "gpu_assigner", None)
        if assigner is None:
            assigner = view.gpu_assigner = cls()
        return assigner

    def held(self, states, name):
        """Ids held by running containers (``states``, ContainerState) and by reservations
        of spawns in progress, except those of the server whose container is ``name``."""
        held = set()
        for state in states:
            if state.running and state.name != name:
                held.update(held_gpus(state.labels))
        for other, ids in self._reserved.items():
            if other != name:
                held.update(ids)
        return held

    def assign(self, states, name, inventory, count, prefer=()):
        """Reserve ``count`` free ids for the server ``name`` and return them (GPUShortage
        when too few are free). No await in here: the read and the reservation are one step."""
        ids = assign_gpus(inventory, count, self.held(states, name), prefer)
        if ids:
            self._reserved[name] = ids
        return ids

    def release(self, name):
        """The spawn of ``name`` is over: from now on its container's label (if it runs) says it."""
        self._reserved.pop(name, None)
