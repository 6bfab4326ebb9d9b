"""A Unix-socket proxy in front of the Docker socket that counts the HTTP requests
passing through it: how tests and benchmarks see how often a hub asks the engine.

    proxy = CountingDockerProxy("/tmp/x/docker.sock").start()
    # point the client at unix:///tmp/x/docker.sock; read proxy.count

A gate (``proxy.hold(pattern, parties)``) holds matching requests until that many
are waiting at once: a request that never gets company shows calls that do not
overlap, without measuring any time.
"""

import asyncio
import re
import threading


class Gate:
    """Holds requests whose request line matches ``pattern`` until ``parties`` of them
    wait together (then all go on), or until ``timeout`` seconds pass (then all go on
    and ``met`` stays False). ``most_waiting`` is the largest number held at once."""

    def __init__(self, pattern, parties, timeout):
        self.pattern = re.compile(pattern)
        self.parties = parties
        self.timeout = timeout
        self.waiting = 0
        self.most_waiting = 0
        self.met = False
        self._open = None

    async def wait(self):
        if self._open is None:
            self._open = asyncio.Event()
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        if self.waiting >= self.parties:
            self.met = True
            self._open.set()
        try:
            await asyncio.wait_for(self._open.wait(), self.timeout)
        except asyncio.TimeoutError:
            self._open.set()
        finally:
            self.waiting -= 1


class CountingDockerProxy:
    """A Unix-socket proxy in front of the Docker socket that counts HTTP requests."""

    REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|DELETE|HEAD) /\S* HTTP/1\.[01]\r\n")

    def __init__(self, path, upstream="/var/run/docker.sock"):
        self.path = path
        self.upstream = upstream
        self.count = 0
        self.gate = None
        self._ready = threading.Event()

    def start(self):
        threading.Thread(target=self._serve, daemon=True, name="counting-proxy").start()
        self._ready.wait(10)
        return self

    def hold(self, pattern, parties, timeout=30):
        """Hold requests matching ``pattern`` (bytes regex on the request line) until
        ``parties`` wait together; returns the Gate. ``hold(None, 0)`` removes it."""
        self.gate = Gate(pattern, parties, timeout) if pattern else None
        return self.gate

    def _serve(self):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(asyncio.start_unix_server(self._handle, path=self.path))
        self._ready.set()
        loop.run_forever()

    async def _pipe(self, reader, writer, count):
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                if count:
                    self.count += len(self.REQUEST_LINE.findall(chunk))
                    gate = self.gate
                    if gate is not None and gate.pattern.match(chunk):
                        await gate.wait()
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer):
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.upstream)
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer, True),
            self._pipe(upstream_reader, client_writer, False),
        )
