"""A server whose swarm node is lost: task and node state to the spawner's view (pure logic)."""

import asyncio

import docker.errors
import pytest

from hubfleet_spawner import SwarmSpawner
from hubfleet_spawner.swarmspawner import lost_node, lost_node_reason, lost_node_start_message

RUNNING_TASK = {"ID": "t1", "NodeID": "n0123456789abcdef", "Status": {"State": "running"}, "DesiredState": "running"}


def node(state, hostname="worker1"):
    return {"ID": "n0123456789abcdef", "Status": {"State": state}, "Description": {"Hostname": hostname}}


def test_a_running_task_on_a_node_that_is_down_is_lost_with_that_node():
    assert lost_node(RUNNING_TASK, node("down")) == "worker1"


@pytest.mark.parametrize("state", ["unknown", "disconnected"])
def test_a_running_task_on_a_node_the_manager_has_not_heard_from_yet_is_not_lost(state):
    # A restarted manager reports every worker "unknown" until it reconnects (fleet drill 10).
    assert lost_node(RUNNING_TASK, node(state)) is None


def test_a_running_task_on_a_ready_node_is_not_lost():
    assert lost_node(RUNNING_TASK, node("ready")) is None


def test_a_task_whose_node_the_swarm_removed_is_lost_and_named_by_node_id():
    assert lost_node(RUNNING_TASK, None) == "n0123456789a"


def test_a_task_not_yet_on_a_node_is_not_lost():
    assert lost_node({"Status": {"State": "pending"}}, None) is None
    assert lost_node(None, None) is None


def test_a_lost_node_without_hostname_is_named_by_its_id():
    assert lost_node(RUNNING_TASK, {"Status": {"State": "down"}}) == "n0123456789a"


def test_with_node_local_volumes_the_user_is_told_the_files_stay_on_the_lost_node():
    reason = lost_node_reason("worker1", shared_storage=False)
    assert "(worker1) is down" in reason
    assert "Your files are on volumes of node worker1" in reason and "empty volumes" in reason
    start = lost_node_start_message("worker1", shared_storage=False)
    assert start.startswith("Your last server was lost with node worker1.")
    assert "empty volumes" in start


def test_with_shared_storage_the_user_is_told_the_files_follow():
    assert "shared storage, so this server has them" in lost_node_reason("worker1", shared_storage=True)
    assert "empty volumes" not in lost_node_start_message("worker1", shared_storage=True)


class FakeSwarm:
    """A manager that knows one service with one task on one node."""

    def __init__(self, task, node):
        self.task, self.node = task, node

    async def call(self, method, *args, **kwargs):
        if method == "tasks":
            return [self.task]
        if method == "inspect_node":
            if self.node is None:
                raise docker.errors.NotFound("no such node")
            return self.node
        raise AssertionError("unexpected call %s" % method)


def polled(task, node_info, **config):
    s = SwarmSpawner(**config)
    s.__dict__["_fake"] = FakeSwarm(task, node_info)
    s.service_id = "svc"
    return s, asyncio.run(s.poll())


@pytest.fixture(autouse=True)
def fake_docker(monkeypatch):
    monkeypatch.setattr(SwarmSpawner, "docker", property(lambda self: self.__dict__["_fake"]))


def test_poll_reports_a_server_on_a_down_node_stopped_and_remembers_the_node():
    s, status = polled(RUNNING_TASK, node("down"))
    assert status is not None
    assert s.lost_on_node == "worker1"
    assert "(worker1) is down" in s.stopped_reason
    state = s.get_state()
    assert state["lost_on_node"] == "worker1"
    s.clear_state()
    assert s.get_state().get("lost_on_node") == "worker1", "the next start must still know"


def test_poll_keeps_a_server_on_a_ready_node_running():
    s, status = polled(RUNNING_TASK, node("ready"))
    assert status is None and s.lost_on_node == "" and s.stopped_reason == ""


def test_poll_after_a_manager_restart_keeps_a_server_on_a_worker_not_yet_reconnected_running():
    s, status = polled(RUNNING_TASK, node("unknown"))
    assert status is None and s.lost_on_node == "" and s.stopped_reason == ""


def test_the_lost_node_is_loaded_back_from_the_hubs_state():
    s = SwarmSpawner()
    s.load_state({"lost_on_node": "worker2"})
    assert s.lost_on_node == "worker2"
