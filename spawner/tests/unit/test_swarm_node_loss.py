"""A server whose swarm node is lost: task and node state to the spawner's view (pure logic)."""

import asyncio
from types import SimpleNamespace

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


# As the swarm lists a task on a node that went down: still "running" (nobody is left to
# report otherwise), but the swarm wants it shut down (seen on the test bed's swarm).
LOST_TASK = dict(RUNNING_TASK, DesiredState="shutdown")


class FakeSwarm:
    """A manager that knows one service with one task on one node."""

    def __init__(self, task, node):
        self.task, self.node = task, node
        self.calls = []

    async def call(self, method, *args, **kwargs):
        self.calls.append(method)
        if method == "services":
            assert kwargs == {"filters": {"label": ["hubfleet.hub=jupyter", "hubfleet.kind=user-server"]}}
            return [{"ID": "svc", "Spec": {"Name": "jupyter-alice", "Labels": {}}}]
        if method == "tasks":
            assert kwargs["filters"]["service"] in (["svc"], "svc"), kwargs  # the view's listing, or poll_engine
            return [dict(self.task, ServiceID="svc")]
        if method == "inspect_node":
            if self.node is None:
                raise docker.errors.NotFound("no such node")
            return self.node
        raise AssertionError("unexpected call %s" % method)


def polled(task, node_info, **config):
    engine = FakeSwarm(task, node_info)
    s = SwarmSpawner(docker_api=engine, **config)
    s.service_id = "svc"
    s.user = SimpleNamespace(name="alice")
    return s, asyncio.run(s.poll()), engine.calls


def test_poll_reports_a_server_on_a_down_node_stopped_and_remembers_the_node():
    s, status, calls = polled(LOST_TASK, node("down"))
    assert status is not None
    assert calls == ["services", "tasks", "tasks", "inspect_node"], "the view's listing, then the engine asked"
    assert s.lost_on_node == "worker1"
    assert "(worker1) is down" in s.stopped_reason
    state = s.get_state()
    assert state["lost_on_node"] == "worker1"
    s.clear_state()
    assert s.get_state().get("lost_on_node") == "worker1", "the next start must still know"


def test_poll_keeps_a_server_on_a_ready_node_running_from_the_view_alone():
    s, status, calls = polled(RUNNING_TASK, node("ready"))
    assert status is None and s.lost_on_node == "" and s.stopped_reason == ""
    assert calls == ["services", "tasks"], "only the shared view's listing"


def test_poll_after_a_manager_restart_keeps_a_server_on_a_worker_not_yet_reconnected_running():
    s, status, calls = polled(LOST_TASK, node("unknown"))
    assert status is None and s.lost_on_node == "" and s.stopped_reason == ""


def test_poll_of_a_task_that_exited_reports_its_exit_code():
    exited = dict(RUNNING_TASK, Status={"State": "failed", "ContainerStatus": {"ExitCode": 3}})
    assert polled(exited, node("ready"))[1] == 3


def test_the_lost_node_is_loaded_back_from_the_hubs_state():
    s = SwarmSpawner()
    s.load_state({"lost_on_node": "worker2"})
    assert s.lost_on_node == "worker2"
