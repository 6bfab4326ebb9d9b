# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Membership and placement decisions of swarm_placement, including the join logic."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils import swarm


@pytest.mark.parametrize("state, manager, desired, manager_host, token, force, expected", [
    ("inactive", False, "manager", False, False, False, swarm.INIT),
    ("inactive", False, "manager", True, False, False, swarm.JOIN),
    ("inactive", False, "manager", False, True, False, swarm.JOIN),
    ("inactive", False, "worker", True, False, False, swarm.JOIN),
    ("inactive", False, "worker", False, True, False, swarm.JOIN),
    ("active", True, "manager", False, False, False, swarm.NONE),
    ("active", False, "worker", True, False, False, swarm.NONE),
    ("active", False, "manager", True, False, False, swarm.PROMOTE),
    ("active", True, "worker", False, False, False, swarm.DEMOTE),
    ("inactive", False, "absent", False, False, False, swarm.NONE),
    ("active", False, "absent", False, False, False, swarm.LEAVE),
    ("active", True, "absent", False, False, True, swarm.LEAVE),
    ("active", True, None, False, False, False, swarm.NONE),
])
def test_membership_action(state, manager, desired, manager_host, token, force, expected):
    assert swarm.membership_action(state, manager, desired, manager_host, token, force) == expected


@pytest.mark.parametrize("state, manager, desired, manager_host, message", [
    ("inactive", False, "worker", False, "needs manager_host"),
    ("active", False, "manager", False, "promoting this worker needs manager_host"),
    ("active", True, "absent", False, "set force=true"),
    ("inactive", False, None, False, "not in a swarm"),
    ("active", False, None, True, "a worker"),
    ("locked", True, "manager", True, "'locked'"),
    ("pending", False, "worker", True, "'pending'"),
])
def test_impossible_requests_name_what_to_change(state, manager, desired, manager_host, message):
    with pytest.raises(swarm.SwarmPlanError, match=message):
        swarm.membership_action(state, manager, desired, manager_host)


def test_local_membership_from_info():
    info = {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "n1", "Cluster": {"ID": "c1"}}}
    assert swarm.local_membership(info) == ("active", True, "n1", "c1")
    assert swarm.local_membership({"Swarm": {"LocalNodeState": "inactive", "NodeID": ""}}) == \
        ("inactive", False, None, None)
    assert swarm.role_of("active", False) == "worker"
    assert swarm.role_of("inactive", True) == "inactive"


def test_join_token_for_role():
    tokens = {"Worker": "SWMTKN-w", "Manager": "SWMTKN-m"}
    assert swarm.join_role_token(tokens, "worker") == "SWMTKN-w"
    assert swarm.join_role_token(tokens, "manager") == "SWMTKN-m"
    with pytest.raises(swarm.SwarmPlanError, match="no manager join token"):
        swarm.join_role_token({"Worker": "x"}, "manager")


@pytest.mark.parametrize("node_addr, join_addr, expected", [
    ("10.0.0.1", None, "10.0.0.1:2377"),
    ("10.0.0.1:4000", None, "10.0.0.1:4000"),
    ("2001:db8::1", None, "[2001:db8::1]:2377"),
    ("10.0.0.1", "10.9.9.9:2377", "10.9.9.9:2377"),
])
def test_join_address(node_addr, join_addr, expected):
    assert swarm.join_address({"Swarm": {"NodeAddr": node_addr}}, join_addr) == expected


def test_join_address_needs_a_manager():
    with pytest.raises(swarm.SwarmPlanError, match="join_addr"):
        swarm.join_address({"Swarm": {"NodeAddr": ""}})


def test_labels_merge_remove_and_conflicts():
    current = {"a": "1", "b": "2"}
    assert swarm.wanted_labels(current, {"b": "3", "c": 4}, ["a"]) == {"b": "3", "c": "4"}
    assert current == {"a": "1", "b": "2"}
    assert swarm.conflicting_labels({"a": "1", "b": "2"}, ["b", "z"]) == ["b"]


def test_placement_constraints_are_sorted_swarm_expressions():
    assert swarm.placement_constraints({"hubfleet.role": "user", "hubfleet.pool": "gpu"}) == [
        "node.labels.hubfleet.pool==gpu", "node.labels.hubfleet.role==user"]
    assert swarm.placement_constraints({}) == []


def test_node_spec_changes_reports_only_real_differences():
    spec = {"Role": "worker", "Availability": "active", "Labels": {"hubfleet.role": "user"}}
    same, changes = swarm.node_spec_changes(spec, {"hubfleet.role": "user"}, None, "active", None)
    assert changes == {} and same == spec
    new, changes = swarm.node_spec_changes(spec, {"hubfleet.pool": "gpu"}, ["hubfleet.role"], "drain", "manager")
    assert new == {"Role": "manager", "Availability": "drain", "Labels": {"hubfleet.pool": "gpu"}}
    assert sorted(changes) == ["availability", "labels", "role"]
    assert spec["Labels"] == {"hubfleet.role": "user"}


def test_node_summary():
    node = {"ID": "n1", "Description": {"Hostname": "h1"}, "Spec": {"Role": "manager", "Availability": "active"},
            "Status": {"State": "ready", "Addr": "10.0.0.1"}, "ManagerStatus": {"Leader": True}}
    assert swarm.node_summary(node) == {"id": "n1", "hostname": "h1", "role": "manager", "availability": "active",
                                        "state": "ready", "addr": "10.0.0.1", "labels": {}, "leader": True}
