# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swarm membership and node-placement decisions for the swarm_placement module.

Pure functions over plain dicts (Docker's ``info()`` and node objects), so unit tests
cover every decision without an engine.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Actions, in the order the module would perform them.
NONE = "none"
INIT = "init"
JOIN = "join"
PROMOTE = "promote"
DEMOTE = "demote"
LEAVE = "leave"


class SwarmPlanError(ValueError):
    """The request cannot be carried out; the message names the parameter to change."""


def local_membership(info):
    """(state, is_manager, node_id, cluster_id) from Docker's ``info()``."""
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    cluster = (swarm.get("Cluster") or {}).get("ID")
    return state, bool(swarm.get("ControlAvailable")), swarm.get("NodeID") or None, cluster


def role_of(state, is_manager):
    """What the engine is now: ``inactive``, ``worker`` or ``manager``."""
    if state != "active":
        return "inactive"
    return "manager" if is_manager else "worker"


def membership_action(state, is_manager, desired, has_manager_host=False, has_join_token=False, force=False):
    """The one membership action that turns the engine into ``desired``.

    ``desired`` is ``manager``, ``worker``, ``absent`` or ``None`` (node settings only,
    which needs a manager). Raises SwarmPlanError when the request is impossible.
    """
    if state in ("pending", "error", "locked"):
        raise SwarmPlanError(
            "the engine's swarm state is %r; resolve it (unlock, or leave by hand) before using this module" % state
        )
    current = role_of(state, is_manager)
    if desired is None:
        if current != "manager":
            raise SwarmPlanError(
                "state is omitted, so this call only sets node labels/availability, which needs a swarm manager; "
                "the engine at docker_host is %s" % ("not in a swarm" if current == "inactive" else "a worker")
            )
        return NONE
    if desired == "absent":
        if current == "inactive":
            return NONE
        if current == "manager" and not force:
            raise SwarmPlanError(
                "state=absent: this engine is a swarm manager; leaving can destroy the swarm, set force=true to leave"
            )
        return LEAVE
    if current == desired:
        return NONE
    if current == "inactive":
        if desired == "manager" and not has_manager_host and not has_join_token:
            return INIT
        if not has_manager_host and not has_join_token:
            raise SwarmPlanError("state=worker: joining a swarm needs manager_host (or join_token and join_addr)")
        return JOIN
    if desired == "manager":
        if not has_manager_host:
            raise SwarmPlanError("state=manager: promoting this worker needs manager_host")
        return PROMOTE
    return DEMOTE


def join_role_token(join_tokens, role):
    """The join token for ``role`` from a manager's ``inspect_swarm()['JoinTokens']``."""
    key = "Manager" if role == "manager" else "Worker"
    token = (join_tokens or {}).get(key)
    if not token:
        raise SwarmPlanError("manager_host returned no %s join token" % role)
    return token


def join_address(manager_info, join_addr=None):
    """Where to join: ``join_addr`` if given, else the manager's advertised address on port 2377."""
    if join_addr:
        return join_addr
    addr = ((manager_info or {}).get("Swarm") or {}).get("NodeAddr")
    if not addr:
        raise SwarmPlanError("manager_host is not a swarm manager with an advertised address; give join_addr")
    if addr.count(":") > 1:  # a bare IPv6 address
        return "[%s]:2377" % addr
    return addr if ":" in addr else "%s:2377" % addr


def wanted_labels(current, labels=None, remove_labels=None):
    """Node labels after setting ``labels`` and removing ``remove_labels`` keys."""
    result = dict(current or {})
    for key in remove_labels or []:
        result.pop(key, None)
    for key, value in (labels or {}).items():
        result[key] = "" if value is None else str(value)
    return result


def conflicting_labels(labels, remove_labels):
    """Keys both set and removed in one call (an error the user must resolve)."""
    return sorted(set(labels or {}) & set(remove_labels or []))


def placement_constraints(labels):
    """SwarmSpawner constraint strings for node labels, e.g. ``node.labels.hubfleet.role==user``."""
    return ["node.labels.%s==%s" % (key, labels[key]) for key in sorted(labels or {})]


def node_summary(node):
    """Plain facts about one Docker node object."""
    spec = node.get("Spec") or {}
    status = node.get("Status") or {}
    manager = node.get("ManagerStatus") or {}
    return {
        "id": node.get("ID"),
        "hostname": (node.get("Description") or {}).get("Hostname"),
        "role": spec.get("Role"),
        "availability": spec.get("Availability"),
        "state": status.get("State"),
        "addr": status.get("Addr"),
        "labels": dict(spec.get("Labels") or {}),
        "leader": bool(manager.get("Leader")),
    }


def node_spec_changes(spec, labels=None, remove_labels=None, availability=None, role=None):
    """(new spec, {field: (before, after)}) for the wanted node settings."""
    new_spec = dict(spec or {})
    changes = {}
    new_labels = wanted_labels(new_spec.get("Labels"), labels, remove_labels)
    if new_labels != (new_spec.get("Labels") or {}):
        changes["labels"] = (dict(new_spec.get("Labels") or {}), new_labels)
        new_spec["Labels"] = new_labels
    for field, value in (("Availability", availability), ("Role", role)):
        if value is not None and new_spec.get(field) != value:
            changes[field.lower()] = (new_spec.get(field), value)
            new_spec[field] = value
    return new_spec, changes
