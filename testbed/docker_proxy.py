"""A Unix-socket proxy in front of the Docker socket that counts the HTTP requests
passing through it: how tests and benchmarks see how often a hub asks the engine.

    proxy = CountingDockerProxy("/tmp/x/docker.sock").start()
    # point the client at unix:///tmp/x/docker.sock; read proxy.count
"""

import asyncio
import re
import threading


class CountingDockerProxy:
    """A Unix-socket proxy in front of the Docker socket that counts HTTP requests."""

    REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|DELETE|HEAD) /\S* HTTP/1\.[01]\r\n")

    def __init__(self, path, upstream="/var/run/docker.sock"):
        self.path = path
        self.upstream = upstream
        self.count = 0
        self._ready = threading.Event()

    def start(self):
        threading.Thread(target=self._serve, daemon=True, name="counting-proxy").start()
        self._ready.wait(10)
        return self

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
