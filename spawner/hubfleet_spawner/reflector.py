"""Shared, continuously updated views of the objects a hub manages.

``ResourceView`` is the machinery, generic over kinds of engine objects (as kubespawner's
``ResourceReflector`` is over Kubernetes kinds): it lists each kind once for every
spawner of the hub and keeps what it learned, then follows the Docker events stream of
the kinds that have events until the next listing. Every poll reads the view. What
this process noted (after a create, a start, a removal) while a listing was on its way
wins over that listing's older answer. Two views are built on it:

``ContainerView`` (DockerSpawner, SystemUserSpawner): the hub's containers. Instead of
one ``inspect`` per user per poll, the view lists the hub's containers once (by label)
and then follows the Docker events stream for them. The stream is opened with
``until`` so it ends by itself after ``resync_interval``; the view then lists again,
which also repairs anything a dropped connection might have missed. With N running
servers that is one list and one long-lived events request per interval, whatever N.

``SwarmView`` (SwarmSpawner): the hub's services, with the swarm's count of their
running tasks, and those services' tasks. The swarm sends no events for tasks, and its
service events carry no labels (so the hub's Docker API filter, which lets through only
events labelled for the hub, passes none): the view lists both kinds every
``resync_interval`` (the spawners' poll interval), two requests whatever N.

Watching (containers). ``watch(container_id, on_stopped)`` asks to be told, once, when a running
container stops running or disappears: from its ``die``/``destroy`` event within a
moment, or from the next listing when the events were missed (the daemon restarted,
the stream dropped). The spawner uses it to tell the hub at once instead of at its
next poll.

Orphans (containers). A hub killed in the middle of spawns leaves containers that no server in its
database knows. With ``reap_orphans(grace, stop)`` the view stops, once, ``grace``
seconds after its first listing, every running user-server container that existed
before this process started and that no spawner has claimed (``claim``, ``watch``) by
then. Stopping keeps the container and its volumes; the user's next start replaces it.
"""

import asyncio
import re
import threading
import time

from .labels import KIND_USER_SERVER, LABEL_HUB, LABEL_KIND

_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")


class ContainerState:
    """What the view knows about one container."""

    __slots__ = ("id", "name", "status", "exit_code", "labels", "created")

    def __init__(self, id, name, status, exit_code=None, labels=None, created=None):
        self.id = id
        self.name = name
        self.status = status
        self.exit_code = exit_code
        self.labels = labels or {}
        self.created = created  # seconds since the epoch, when the listing said

    @property
    def running(self):
        return self.status in ("running", "restarting", "paused")

    @classmethod
    def from_summary(cls, summary):
        """From an item of ``GET /containers/json``."""
        names = summary.get("Names") or ["/"]
        match = _EXIT_CODE.search(summary.get("Status") or "")
        return cls(
            id=summary["Id"],
            name=names[0].lstrip("/"),
            status=summary.get("State") or "unknown",
            exit_code=int(match.group(1)) if match else None,
            labels=summary.get("Labels") or {},
            created=summary.get("Created"),
        )


class ResourceView:
    """The objects of one hub, of the kinds in ``kinds``, kept current in the background.

    A subclass says how each kind is listed (``list_kind``) and, when the engine sends
    events for it, which events to follow (``event_filters``) and how they change the
    view (``_apply_event``). Objects are kept per kind, by id.
    """

    #: The kinds of objects this view keeps, listed in this order.
    kinds = ()

    _shared = {}

    def __init__(self, api, hub, log, resync_interval=60.0):
        self.api = api
        self.hub = hub
        self.log = log
        self.resync_interval = resync_interval
        self._objects = {kind: {} for kind in self.kinds}
        # What this process learned (kind -> id -> state, None for gone) since the latest
        # listing was asked for: newer than that listing's answer.
        self._learned = {kind: {} for kind in self.kinds}
        self._synced = None
        self._task = None
        self._loop = None
        self.requests = 0
        # object id -> callable(state or None), called once when it stops running
        self._watchers = {}

    @classmethod
    def shared(cls, api, hub, log, resync_interval=60.0):
        """The one view of this class per engine and hub label in this process."""
        key = (cls, id(api), hub)
        view = ResourceView._shared.get(key)
        if view is None:
            view = ResourceView._shared[key] = cls(api, hub, log, resync_interval)
        return view

    @property
    def hub_filter(self):
        return {"label": "%s=%s" % (LABEL_HUB, self.hub)}

    def start(self):
        """Begin listing and following events (idempotent; needs a running event loop)."""
        self._ensure_running()

    def _ensure_running(self):
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._synced = asyncio.Event()
            self._task = loop.create_task(self._run())

    async def _wait_synced(self, timeout):
        """Whether the first listing came within ``timeout`` seconds (it may be awaited)."""
        self._ensure_running()
        if self._synced.is_set():
            return True
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def watch(self, object_id, on_stopped):
        """Call ``on_stopped(state)`` once when the server ``object_id`` (a container, a
        service) stops running (state is None when it is gone). Replaces an earlier
        watcher of that id."""
        self._watchers[object_id] = on_stopped

    def unwatch(self, object_id):
        """No longer call the watcher of ``object_id`` (a stop the hub asked for)."""
        self._watchers.pop(object_id, None)

    def _tell_watcher(self, object_id, state):
        on_stopped = self._watchers.pop(object_id, None)
        if on_stopped is None:
            return
        try:
            on_stopped(state)
        except Exception:
            self.log.exception("Watcher of %s failed", object_id[:12])

    def _note(self, kind, object_id, state):
        self._objects[kind][object_id] = state
        self._learned[kind][object_id] = state

    def _forget(self, kind, object_id):
        self._objects[kind].pop(object_id, None)
        self._learned[kind][object_id] = None

    # --- what a subclass says ----------------------------------------------------------

    async def list_kind(self, kind):
        """Ask the engine for every object of ``kind``: {id: state}."""
        raise NotImplementedError

    def event_filters(self):
        """The events stream's filters, or None when this view's kinds have no events."""
        return None

    def _apply_event(self, event):
        """Apply one event of the stream (on the event loop)."""

    def _after_list(self):
        """Called after every listing (on the event loop)."""

    def _after_sync(self):
        """Called after each round's listing, once the view counts as synced."""

    # --- the loop ----------------------------------------------------------------------

    async def _run(self):
        while True:
            try:
                since = int(time.time()) - 1
                await self._list()
                self._synced.set()
                self._after_sync()
                until = since + int(self.resync_interval)
                if self.event_filters() is None:
                    await asyncio.sleep(max(0.0, self.resync_interval - (time.time() - since - 1)))
                else:
                    await self._in_daemon_thread(self._follow_events, since, until)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the engine restarted, a socket dropped: list again
                self.log.warning("%s for hub %s: %s; listing again", type(self).__name__, self.hub, e)
                await asyncio.sleep(1)

    async def _ask(self, method, *args, **kwargs):
        """One engine request of a listing (counted in ``requests``)."""
        self.requests += 1
        return await self.api.call(method, *args, **kwargs)

    async def _list(self):
        """Replace the view with a listing of each kind, keeping what was learned while it
        was on its way: an object started (or removed) meanwhile stays as it was learned."""
        for kind in self.kinds:
            self._learned[kind] = {}
            listed = await self.list_kind(kind)
            for object_id, state in self._learned[kind].items():
                if state is None:
                    listed.pop(object_id, None)
                else:
                    listed[object_id] = state
            self._objects[kind] = listed
        self._after_list()

    async def _in_daemon_thread(self, func, *args):
        """Run a long blocking call in a daemon thread (never in the shared pool,
        which it would hold for minutes, and never delaying interpreter exit)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def report(setter, value):
            if not done.done():
                setter(value)

        def target():
            try:
                func(*args)
            except Exception as e:
                outcome = (done.set_exception, e)
            else:
                outcome = (done.set_result, None)
            try:
                loop.call_soon_threadsafe(report, *outcome)
            except RuntimeError:  # the loop closed: the hub is shutting down
                pass

        threading.Thread(target=target, name="hubfleet-docker-events", daemon=True).start()
        await done

    def _follow_events(self, since, until):
        """Blocking: apply this view's events until ``until``."""
        self.requests += 1
        loop = self._loop
        stream = self.api.client.events(since=since, until=until, decode=True, filters=self.event_filters())
        for event in stream:
            try:
                loop.call_soon_threadsafe(self._apply_event, event)
            except RuntimeError:  # the loop closed: the hub is shutting down
                return


class ContainerView(ResourceView):
    """The containers labelled for one hub, kept current in the background."""

    kinds = ("container",)

    def __init__(self, api, hub, log, resync_interval=60.0):
        super().__init__(api, hub, log, resync_interval)
        # container id -> futures of stops waiting for it to stop running (see ``stopped``)
        self._stop_waiters = {}
        self._claimed = set()
        self._orphan_reaper = None  # (grace seconds, async stop(container_id))
        self._reaping = None
        self._born = time.time()

    @property
    def _containers(self):
        return self._objects["container"]

    async def list_kind(self, kind):
        summaries = await self._ask("containers", all=True, filters=self.hub_filter)
        return {s["Id"]: ContainerState.from_summary(s) for s in summaries}

    def event_filters(self):
        return dict(self.hub_filter, type="container")

    async def get(self, container_id, timeout=10.0):
        """The state of ``container_id``, or None when the engine has no such container.

        Waits for the first listing (at most ``timeout`` seconds, then asks the engine
        directly) so that a hub that just started never mistakes "not listed yet" for
        "gone".
        """
        if not await self._wait_synced(timeout):
            return await self._inspect(container_id)
        state = self._containers.get(container_id)
        if state is None and container_id not in self._containers:
            # Created moments ago by another path (or by an older hub): confirm once.
            state = await self._inspect(container_id)
        return state

    async def all(self, timeout=10.0):
        """Every container of this hub the view knows (a list of ``ContainerState``).

        Waits for the first listing like ``get``; past ``timeout`` it lists the engine
        itself, so an answer never leaves out a container merely not listed yet.
        """
        if not await self._wait_synced(timeout):
            summaries = await self.api.call("containers", all=True, filters=self.hub_filter)
            return [ContainerState.from_summary(s) for s in summaries]
        return list(self._containers.values())

    def note(self, state):
        """Record a state this process has just seen (after create, start, inspect)."""
        self._note("container", state.id, state)

    def forget(self, container_id):
        self._forget("container", container_id)

    def claim(self, container_id):
        """A spawner owns ``container_id`` (it is starting or running it): never an orphan."""
        self._claimed.add(container_id)

    def reap_orphans(self, grace, stop):
        """Stop unclaimed user-server containers ``grace`` s after the first listing (once)."""
        if self._orphan_reaper is None and grace > 0:
            self._orphan_reaper = (grace, stop)

    def orphans(self):
        """Running user-server containers from before this process that nobody claims."""
        return [
            state
            for state in self._containers.values()
            if state.running
            and state.labels.get(LABEL_KIND) == KIND_USER_SERVER
            and state.id not in self._claimed
            and state.id not in self._watchers
            and (state.created or 0) < self._born
        ]

    def _after_sync(self):
        if self._reaping is None and self._orphan_reaper is not None:
            self._reaping = asyncio.ensure_future(self._reap_orphans_later())

    def _after_list(self):
        # Deaths whose events were missed (a daemon restart, a dropped stream).
        containers = self._containers
        for container_id in set(self._watchers) | set(self._stop_waiters):
            state = containers.get(container_id)
            if state is None or not state.running:
                self._notify_stopped(container_id, state)

    async def _reap_orphans_later(self):
        grace, stop = self._orphan_reaper
        await asyncio.sleep(grace)
        for state in self.orphans():
            self.log.warning(
                "Stopping container %s: no server of hub %s claims it (a spawn cut short by a hub restart?)",
                state.name,
                self.hub,
            )
            try:
                await stop(state.id)
            except Exception as e:
                self.log.warning("Could not stop orphan container %s: %s", state.name, e)

    def stopped(self, container_id):
        """A future that is done once ``container_id`` no longer runs (its die or destroy
        event, or a listing that finds it stopped or gone). Ask for it before signalling
        the container, so its death cannot come before the question."""
        future = asyncio.get_running_loop().create_future()
        state = self._containers.get(container_id)
        if container_id in self._containers and not state.running:
            future.set_result(None)
        else:
            self._stop_waiters.setdefault(container_id, []).append(future)
            future.add_done_callback(lambda f: self._forget_waiter(container_id, f))
        return future

    def _forget_waiter(self, container_id, future):
        waiters = self._stop_waiters.get(container_id, [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self._stop_waiters.pop(container_id, None)

    def _notify_stopped(self, container_id, state):
        for future in list(self._stop_waiters.get(container_id, [])):
            if not future.done():
                future.set_result(None)
        self._tell_watcher(container_id, state)

    async def _inspect(self, container_id):
        import docker.errors

        try:
            info = await self.api.call("inspect_container", container_id)
        except docker.errors.NotFound:
            return None
        state = info.get("State") or {}
        return ContainerState(
            id=info["Id"],
            name=info.get("Name", "").lstrip("/"),
            status=state.get("Status", "unknown"),
            exit_code=state.get("ExitCode"),
            labels=(info.get("Config") or {}).get("Labels") or {},
        )

    def _apply_event(self, event):
        action = (event.get("Action") or event.get("status") or "").split(":")[0]
        container_id = event.get("id") or (event.get("Actor") or {}).get("ID")
        if not container_id:
            return
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        state = self._containers.get(container_id)
        if action == "destroy":
            self.forget(container_id)
            self._notify_stopped(container_id, None)
            return
        if state is None:
            labels = {k: v for k, v in attributes.items() if k.startswith("hubfleet.")}
            state = ContainerState(container_id, attributes.get("name", ""), "created", labels=labels)
        self.note(state)
        if action == "start":
            state.status, state.exit_code = "running", None
        elif action == "die":
            state.status = "exited"
            try:
                state.exit_code = int(attributes.get("exitCode", 0))
            except ValueError:
                state.exit_code = 0
            self._notify_stopped(container_id, state)
        elif action == "pause":
            state.status = "paused"
        elif action == "unpause":
            state.status = "running"


class ServiceState:
    """What the swarm view knows about one service."""

    __slots__ = ("id", "name", "labels")

    def __init__(self, id, name, labels=None):
        self.id = id
        self.name = name
        self.labels = labels or {}

    @classmethod
    def from_summary(cls, summary):
        """From an item of ``GET /services``."""
        spec = summary.get("Spec") or {}
        return cls(summary["ID"], spec.get("Name", ""), spec.get("Labels") or {})


# Task states in which a task's server may still run (or is on its way to).
TASK_ACTIVE = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}


def newest_task(tasks):
    """The latest of a service's tasks (None for none)."""
    return max(tasks, key=lambda t: (t.get("Version", {}).get("Index", 0), t.get("CreatedAt", ""))) if tasks else None


def task_in_doubt(task):
    """Whether a task the listing shows may have stopped running: it ended, or it says
    running while the swarm wants it shut down (its node is down: nobody is left to
    report otherwise). The spawner then asks the engine for the details."""
    if task is None:
        return False
    state = (task.get("Status") or {}).get("State")
    return state not in TASK_ACTIVE or task.get("DesiredState", "running") != "running"


class SwarmView(ResourceView):
    """The services labelled for one hub and their tasks, listed every ``resync_interval``.

    Two requests a round, whatever the number of servers: the services, and the tasks
    of exactly those services (the hub's Docker API filter lists only tasks of named
    services of the hub). A spawner notes the service it created (``note_service``) and
    forgets the one it removed (``forget_service``), so a listing on its way meanwhile
    does not undo either. A watched service (``watch``) whose listing shows it gone or
    its newest task in doubt (``task_in_doubt``) has its watcher called, so the hub
    hears of a lost server at the listing, not at its next poll after it.
    """

    kinds = ("service", "task")

    async def list_kind(self, kind):
        if kind == "service":
            # User servers only: not the ownership step's one-shot services, gone in moments.
            user_servers = [self.hub_filter["label"], "%s=%s" % (LABEL_KIND, KIND_USER_SERVER)]
            services = await self._ask("services", filters={"label": user_servers})
            return {s["ID"]: ServiceState.from_summary(s) for s in services}
        service_ids = sorted(self._objects["service"])
        if not service_ids:
            return {}
        tasks = await self._ask("tasks", filters={"service": service_ids})
        return {t["ID"]: t for t in tasks if t.get("ServiceID") in self._objects["service"]}

    def tasks_of(self, service_id):
        return [t for t in self._objects["task"].values() if t.get("ServiceID") == service_id]

    def _after_list(self):
        for service_id in list(self._watchers):
            state = self._objects["service"].get(service_id)
            if state is None:
                self._tell_watcher(service_id, None)
            elif task_in_doubt(newest_task(self.tasks_of(service_id))):
                self._tell_watcher(service_id, state)

    def note_service(self, service_id, name, labels=None):
        """A service this process has just created (its task not yet known)."""
        self._note("service", service_id, ServiceState(service_id, name, labels))

    def forget_service(self, service_id):
        """A service this process has just removed, with its tasks."""
        self._forget("service", service_id)
        for task_id, task in list(self._objects["task"].items()):
            if task.get("ServiceID") == service_id:
                self._forget("task", task_id)

    async def service(self, service_id, timeout=10.0):
        """(ServiceState, its tasks) from the view, or None when the view cannot say:
        the first listing is late, or the service is not listed (removed, or created
        by another process since); the caller then asks the engine itself."""
        if not await self._wait_synced(timeout):
            return None
        state = self._objects["service"].get(service_id)
        if state is None:
            return None
        return state, self.tasks_of(service_id)
