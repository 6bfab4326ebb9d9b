"""One shared, continuously updated view of the containers a hub manages.

Instead of one ``inspect`` per user per poll, the view lists the hub's containers
once (by label) and then follows the Docker events stream for them; every poll
reads the view. The stream is opened with ``until`` so it ends by itself after
``resync_interval``; the view then lists again, which also repairs anything a
dropped connection might have missed. With N running servers that is one list and
one long-lived events request per interval, whatever N.

Watching. ``watch(container_id, on_stopped)`` asks to be told, once, when a running
container stops running or disappears: from its ``die``/``destroy`` event within a
moment, or from the next listing when the events were missed (the daemon restarted,
the stream dropped). The spawner uses it to tell the hub at once instead of at its
next poll.

Orphans. A hub killed in the middle of spawns leaves containers that no server in its
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


class ContainerView:
    """The containers labelled for one hub, kept current in the background."""

    _shared = {}

    def __init__(self, api, hub, log, resync_interval=60.0):
        self.api = api
        self.hub = hub
        self.log = log
        self.resync_interval = resync_interval
        self._containers = {}
        # What this process learned (container id -> state, None for gone) since the
        # latest listing was asked for: newer than that listing's answer.
        self._learned = {}
        self._synced = None
        self._task = None
        self._loop = None
        # container id -> callable(state or None), called once when it stops running
        self._watchers = {}
        # container id -> futures of stops waiting for it to stop running (see ``stopped``)
        self._stop_waiters = {}
        self._claimed = set()
        self._orphan_reaper = None  # (grace seconds, async stop(container_id))
        self._born = time.time()
        self.requests = 0

    @classmethod
    def shared(cls, api, hub, log, resync_interval=60.0):
        """The one view per engine and hub label in this process."""
        key = (id(api), hub)
        view = cls._shared.get(key)
        if view is None:
            view = cls._shared[key] = cls(api, hub, log, resync_interval)
        return view

    def start(self):
        """Begin listing and following events (idempotent; needs a running event loop)."""
        self._ensure_running()

    def _ensure_running(self):
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._synced = asyncio.Event()
            self._task = loop.create_task(self._run())

    async def get(self, container_id, timeout=10.0):
        """The state of ``container_id``, or None when the engine has no such container.

        Waits for the first listing (at most ``timeout`` seconds, then asks the engine
        directly) so that a hub that just started never mistakes "not listed yet" for
        "gone".
        """
        self._ensure_running()
        if not self._synced.is_set():
            try:
                await asyncio.wait_for(self._synced.wait(), timeout)
            except asyncio.TimeoutError:
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
        self._ensure_running()
        if not self._synced.is_set():
            try:
                await asyncio.wait_for(self._synced.wait(), timeout)
            except asyncio.TimeoutError:
                summaries = await self.api.call("containers", all=True, filters={"label": "%s=%s" % (LABEL_HUB, self.hub)})
                return [ContainerState.from_summary(s) for s in summaries]
        return list(self._containers.values())

    def note(self, state):
        """Record a state this process has just seen (after create, start, inspect)."""
        self._containers[state.id] = state
        self._learned[state.id] = state

    def forget(self, container_id):
        self._containers.pop(container_id, None)
        self._learned[container_id] = None

    def watch(self, container_id, on_stopped):
        """Call ``on_stopped(state)`` once when ``container_id`` stops running (state is
        None when the container is gone). Replaces an earlier watcher of that id."""
        self._watchers[container_id] = on_stopped

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

    def unwatch(self, container_id):
        """No longer call the watcher of ``container_id`` (a stop the hub asked for)."""
        self._watchers.pop(container_id, None)

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
        on_stopped = self._watchers.pop(container_id, None)
        if on_stopped is None:
            return
        try:
            on_stopped(state)
        except Exception:
            self.log.exception("Watcher of container %s failed", container_id[:12])

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

    async def _run(self):
        reaping = None
        while True:
            try:
                since = int(time.time()) - 1
                await self._list()
                self._synced.set()
                if reaping is None and self._orphan_reaper is not None:
                    reaping = asyncio.ensure_future(self._reap_orphans_later())
                until = since + int(self.resync_interval)
                await self._in_daemon_thread(self._follow_events, since, until)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the engine restarted, a socket dropped: list again
                self.log.warning("Container view for hub %s: %s; listing again", self.hub, e)
                await asyncio.sleep(1)

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

    async def _list(self):
        """Replace the view with a listing, keeping what was learned while it was on its
        way: a container started (or removed) meanwhile is listed as it was before."""
        self.requests += 1
        self._learned = {}
        summaries = await self.api.call(
            "containers", all=True, filters={"label": "%s=%s" % (LABEL_HUB, self.hub)}
        )
        containers = {s["Id"]: ContainerState.from_summary(s) for s in summaries}
        for container_id, state in self._learned.items():
            if state is None:
                containers.pop(container_id, None)
            else:
                containers[container_id] = state
        self._containers = containers
        # Deaths whose events were missed (a daemon restart, a dropped stream).
        for container_id in set(self._watchers) | set(self._stop_waiters):
            state = containers.get(container_id)
            if state is None or not state.running:
                self._notify_stopped(container_id, state)

    def _follow_events(self, since, until):
        """Blocking: apply container events for this hub until ``until``."""
        self.requests += 1
        loop = self._loop
        stream = self.api.client.events(
            since=since,
            until=until,
            decode=True,
            filters={"type": "container", "label": "%s=%s" % (LABEL_HUB, self.hub)},
        )
        for event in stream:
            try:
                loop.call_soon_threadsafe(self._apply_event, event)
            except RuntimeError:  # the loop closed: the hub is shutting down
                return

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
