"""The shared container view: listings, events and what the spawners note meanwhile.

The engine is stood in for by a listing the test releases by hand, so the order of
events is the test's to choose (pure logic: real engines are in tests/integration).
"""

import asyncio
import logging

from hubfleet_spawner.reflector import ContainerState, ContainerView, SwarmView, task_in_doubt


class HeldListing:
    """An API whose container listing answers only when the test releases it."""

    def __init__(self, summaries):
        self.summaries = summaries
        self.release = asyncio.Event()
        self.asked = asyncio.Event()

    async def call(self, method, *args, **kwargs):
        assert method == "containers", method
        self.asked.set()
        await self.release.wait()
        return self.summaries


def summary(container_id, state, status=""):
    return {"Id": container_id, "Names": ["/" + container_id], "State": state, "Status": status, "Labels": {}}


def view_over(api):
    return ContainerView(api, "hub", logging.getLogger("test"))


async def list_while(api, view, during):
    """Run a listing, calling ``during()`` after it was asked and before it answers."""
    listing = asyncio.ensure_future(view._list())
    await api.asked.wait()
    during()
    api.release.set()
    await listing


async def test_a_start_noted_while_a_listing_is_on_its_way_is_not_undone_by_it():
    api = HeldListing([summary("a", "created")])
    view = view_over(api)
    await list_while(api, view, lambda: view.note(ContainerState("a", "a", "running")))
    assert view._containers["a"].running


async def test_a_container_removed_while_a_listing_is_on_its_way_stays_gone():
    api = HeldListing([summary("a", "running", "Up 3 seconds")])
    view = view_over(api)
    await list_while(api, view, lambda: view.forget("a"))
    assert "a" not in view._containers


async def test_an_event_applied_while_a_listing_is_on_its_way_wins_over_it():
    api = HeldListing([summary("a", "running", "Up 3 seconds")])
    view = view_over(api)
    view.note(ContainerState("a", "a", "running"))
    died = {"Action": "die", "id": "a", "Actor": {"ID": "a", "Attributes": {"exitCode": "137"}}}
    await list_while(api, view, lambda: view._apply_event(died))
    state = view._containers["a"]
    assert not state.running and state.exit_code == 137


async def test_a_listing_replaces_what_was_known_before_it_was_asked():
    api = HeldListing([summary("b", "exited", "Exited (3) 2 seconds ago")])
    view = view_over(api)
    view.note(ContainerState("a", "a", "running"))  # gone by the time of the listing
    await list_while(api, view, lambda: None)
    assert "a" not in view._containers
    assert view._containers["b"].exit_code == 3
    # What was learned before one listing does not override the next one.
    api.release.clear()
    api.asked.clear()
    api.summaries = []
    await list_while(api, view, lambda: None)
    assert view._containers == {}


async def test_events_track_start_die_and_destroy():
    view = view_over(HeldListing([]))
    attributes = {"name": "c", "hubfleet.user": "alice", "other": "x"}
    view._apply_event({"Action": "create", "id": "c", "Actor": {"Attributes": attributes}})
    assert view._containers["c"].status == "created"
    assert view._containers["c"].labels == {"hubfleet.user": "alice"}
    view._apply_event({"Action": "start", "id": "c"})
    assert view._containers["c"].running
    view._apply_event({"Action": "die", "id": "c", "Actor": {"Attributes": {"exitCode": "0"}}})
    assert view._containers["c"].exit_code == 0 and not view._containers["c"].running
    view._apply_event({"Action": "destroy", "id": "c"})
    assert "c" not in view._containers


def watched(view, container_id):
    seen = []
    view.watch(container_id, seen.append)
    return seen


async def test_a_watcher_hears_of_a_die_event_once():
    view = view_over(HeldListing([]))
    view.note(ContainerState("c", "c", "running"))
    seen = watched(view, "c")
    view._apply_event({"Action": "die", "id": "c", "Actor": {"Attributes": {"exitCode": "137"}}})
    view._apply_event({"Action": "destroy", "id": "c"})
    assert [state.exit_code for state in seen] == [137]


async def test_a_watcher_hears_of_a_removal_as_none():
    view = view_over(HeldListing([]))
    view.note(ContainerState("c", "c", "running"))
    seen = watched(view, "c")
    view._apply_event({"Action": "destroy", "id": "c"})
    assert seen == [None]


async def test_a_death_missed_by_the_events_is_heard_from_the_next_listing():
    # The daemon restarted (or the stream dropped) while the container died.
    api = HeldListing([summary("dead", "exited", "Exited (1) 3 seconds ago"), summary("alive", "running")])
    view = view_over(api)
    dead, alive, gone = watched(view, "dead"), watched(view, "alive"), watched(view, "gone")
    api.release.set()
    await view._list()
    assert [state.exit_code for state in dead] == [1]
    assert alive == []
    assert gone == [None]


async def test_an_unwatched_container_tells_nobody():
    view = view_over(HeldListing([]))
    view.note(ContainerState("c", "c", "running"))
    seen = watched(view, "c")
    view.unwatch("c")
    view._apply_event({"Action": "die", "id": "c", "Actor": {"Attributes": {"exitCode": "0"}}})
    assert seen == []


async def test_other_containers_events_leave_a_watcher_alone():
    view = view_over(HeldListing([]))
    seen = watched(view, "c")
    view._apply_event({"Action": "die", "id": "other", "Actor": {"Attributes": {"exitCode": "1"}}})
    view._apply_event({"Action": "start", "id": "c"})
    assert seen == []


def user_server(container_id, state="running", created=0, kind="user-server"):
    return ContainerState(container_id, container_id, state, labels={"hubfleet.kind": kind}, created=created)


def test_orphans_are_unclaimed_running_user_servers_from_before_the_view():
    view = view_over(HeldListing([]))
    for state in (
        user_server("orphan"),
        user_server("claimed"),
        user_server("watched"),
        user_server("stopped", state="exited"),
        user_server("hub", kind="hub"),
        user_server("new", created=view._born + 5),  # created by this process's spawns
    ):
        view._containers[state.id] = state
    view.claim("claimed")
    view.watch("watched", lambda state: None)
    assert [state.id for state in view.orphans()] == ["orphan"]


async def test_the_reaper_stops_each_orphan_once_after_the_grace_period():
    view = view_over(HeldListing([]))
    view._containers["orphan"] = user_server("orphan")
    view._containers["mine"] = user_server("mine")
    stopped = []

    async def stop(container_id):
        stopped.append(container_id)

    view.reap_orphans(0.01, stop)
    view.reap_orphans(99, None)  # the first setting holds
    view.claim("mine")
    await view._reap_orphans_later()
    assert stopped == ["orphan"]


def test_no_grace_means_no_reaping():
    view = view_over(HeldListing([]))
    view.reap_orphans(0, None)
    assert view._orphan_reaper is None


async def test_a_stop_waiting_on_the_view_is_told_by_the_die_event_or_a_listing():
    view = view_over(HeldListing([]))
    view.note(ContainerState("a", "a", "running"))
    view.note(ContainerState("b", "b", "running"))
    by_event, by_listing = view.stopped("a"), view.stopped("b")
    assert not by_event.done() and not by_listing.done()
    view._apply_event({"Action": "die", "id": "a", "Actor": {"ID": "a", "Attributes": {"exitCode": "0"}}})
    await asyncio.sleep(0)
    assert by_event.done() and not by_listing.done()
    view.api.release.set()
    await view._list()  # b is gone: the events were missed
    assert by_listing.done()
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert view._stop_waiters == {}
    # Already stopped: done at once.
    view.note(ContainerState("c", "c", "exited", exit_code=0))
    assert view.stopped("c").done()


# --- the swarm view: services and their tasks ------------------------------------------------


class Swarm:
    """A manager's listings of services and tasks; ``held`` makes the services listing
    wait until the test releases it."""

    def __init__(self, services, tasks, held=False):
        self.services, self.tasks, self.calls = services, tasks, []
        self.release = asyncio.Event()
        self.asked = asyncio.Event()
        if not held:
            self.release.set()

    async def call(self, method, *args, **kwargs):
        self.calls.append((method, kwargs))
        if method == "services":
            assert kwargs == {"filters": {"label": ["hubfleet.hub=hub", "hubfleet.kind=user-server"]}}
            self.asked.set()
            await self.release.wait()
            return [{"ID": s, "Spec": {"Name": "jupyter-" + s, "Labels": {}}} for s in self.services]
        assert method == "tasks", method
        wanted = kwargs["filters"]["service"]
        return [t for t in self.tasks if t["ServiceID"] in wanted]


def task(service_id, state="running", desired="running", index=1):
    return {"ID": "t-%s-%d" % (service_id, index), "ServiceID": service_id, "Status": {"State": state},
            "DesiredState": desired, "Version": {"Index": index}}


def swarm_view(api):
    return SwarmView(api, "hub", logging.getLogger("test"))


async def test_the_swarm_view_lists_50_servers_in_two_requests_and_asks_tasks_of_its_services_only():
    services = ["s%02d" % i for i in range(50)]
    api = Swarm(services, [task(s) for s in services] + [task("other-hubs")])
    view = swarm_view(api)
    await view._list()
    assert [method for method, _ in api.calls] == ["services", "tasks"]
    assert api.calls[1][1] == {"filters": {"service": services}}
    assert view.requests == 2
    assert [t["ServiceID"] for t in view.tasks_of("s07")] == ["s07"]


async def test_a_swarm_view_without_services_asks_no_tasks():
    api = Swarm([], [task("x")])
    view = swarm_view(api)
    await view._list()
    assert [method for method, _ in api.calls] == ["services"] and view.requests == 1


async def test_a_service_created_while_a_listing_is_on_its_way_is_kept_and_its_tasks_are_asked():
    api = Swarm([], [task("new")], held=True)
    view = swarm_view(api)
    listing = asyncio.ensure_future(view._list())
    await api.asked.wait()
    view.note_service("new", "jupyter-new")
    api.release.set()
    await listing
    assert "new" in view._objects["service"]
    assert [t["ID"] for t in view.tasks_of("new")] == ["t-new-1"]


async def test_a_service_removed_while_a_listing_is_on_its_way_stays_gone_with_its_tasks():
    api = Swarm(["gone"], [task("gone")])
    view = swarm_view(api)
    await view._list()
    api.release.clear()
    api.asked.clear()
    listing = asyncio.ensure_future(view._list())
    await api.asked.wait()
    view.forget_service("gone")
    api.release.set()
    await listing
    assert "gone" not in view._objects["service"] and view.tasks_of("gone") == []


async def test_the_swarm_view_tells_watchers_of_servers_gone_or_in_doubt_once_and_not_of_running_ones():
    api = Swarm(["up", "lost", "ended"], [task("up"), task("lost", desired="shutdown"),
                                           task("ended", "running", index=1), task("ended", "complete", index=2)])
    view = swarm_view(api)
    told = []
    for service_id in ("up", "lost", "ended", "removed"):
        view.watch(service_id, lambda state, s=service_id: told.append(s))
    await view._list()
    assert sorted(told) == ["ended", "lost", "removed"]
    await view._list()
    assert len(told) == 3, "each watcher is told once"
    assert set(view._watchers) == {"up"}


def test_a_task_is_in_doubt_when_it_ended_or_the_swarm_wants_it_shut_down():
    assert not task_in_doubt(task("s"))
    assert not task_in_doubt(task("s", "starting"))
    assert not task_in_doubt(None)
    assert task_in_doubt(task("s", desired="shutdown"))  # its node is down
    for ended in ("complete", "failed", "shutdown", "rejected", "orphaned"):
        assert task_in_doubt(task("s", ended))
