"""The hub's Docker API filter as a service: a Unix-socket HTTP proxy in front of the engine.

Each request is read whole (head and body), judged by ``rules.decide``, the objects it
names are looked up on the engine and must be this hub's, and only then is it sent
upstream, with ``Connection: close``, so the answer streams back byte for byte until
the engine closes it: events, logs, waits and chunked pulls need nothing special, and
one client connection carries exactly one judged request. Exec starts (HTTP upgrade)
are piped both ways. A refused request gets HTTP 403 with a JSON ``message`` naming
the rule, in the engine's own error shape, so the Docker SDK raises it as an APIError.
"""

import asyncio
import json
import logging
import os
from urllib.parse import parse_qs, urlencode, urlsplit

from . import rules

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024
# Containers and services never change their labels: a confirmed id stays confirmed.
CACHE_SIZE = 4096
# Headers the proxy sets itself on the way upstream.
_HOP_HEADERS = {b"connection", b"content-length", b"transfer-encoding", b"keep-alive", b"upgrade", b"te"}

log = logging.getLogger("hubfleet.docker_filter")


class BadRequest(Exception):
    pass


def _response(status, reason, body, content_type=b"application/json"):
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        status, reason, content_type, len(body), body,
    )


async def read_request(reader):
    """(method, target, headers [(name, value)], body bytes) of one HTTP/1.1 request, or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise BadRequest("incomplete request head")
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large")
    lines = head[:-4].split(b"\r\n")
    try:
        method, target, version = lines[0].split(b" ", 2)
    except ValueError:
        raise BadRequest("malformed request line")
    if not version.startswith(b"HTTP/1."):
        raise BadRequest("only HTTP/1.x is served")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise BadRequest("malformed header line")
        headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value for name, value in headers}
    body = b""
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        chunks = []
        size = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            length = int(line.split(b";")[0].strip() or b"0", 16)
            if length == 0:
                await reader.readuntil(b"\r\n")  # the blank line after the last chunk (no trailers)
                break
            size += length
            if size > MAX_BODY:
                raise BadRequest("request body too large")
            chunks.append(await reader.readexactly(length))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif b"content-length" in fields:
        length = int(fields[b"content-length"])
        if length > MAX_BODY:
            raise BadRequest("request body too large")
        body = await reader.readexactly(length)
    return method.decode("latin-1"), target.decode("latin-1"), headers, body


def _parse_body(headers, body):
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


async def _read_response(reader):
    """(status, body) of a whole HTTP response read until the engine closes the connection."""
    raw = await reader.read()
    head, body = raw.split(b"\r\n\r\n", 1) if b"\r\n\r\n" in raw else (raw, b"")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    if any(line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower() for line in lines[1:]):
        decoded, rest = [], body
        while rest:
            size_line, rest = rest.split(b"\r\n", 1) if b"\r\n" in rest else (rest, b"")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            decoded.append(rest[:size])
            rest = rest[size + 2:]
        body = b"".join(decoded)
    return status, body


class DockerFilter:
    """Serves the filtered Docker API of one hub on a Unix socket."""

    def __init__(self, policy, upstream="/var/run/docker.sock"):
        self.policy = policy
        self.upstream = upstream
        self.allowed = 0
        self.refused = 0
        self._owned_ids = {}
        self._server = None

    # --- talking to the engine --------------------------------------------------------

    async def engine_get(self, path):
        reader, writer = await asyncio.open_unix_connection(self.upstream)
        try:
            writer.write(("GET %s HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n" % path).encode("latin-1"))
            await writer.drain()
            return await _read_response(reader)
        finally:
            writer.close()

    async def confirm_owned(self, kind, ident, missing):
        """None when the object is this hub's, else the response to send instead."""
        original = (kind, ident)
        while True:
            if self._owned_ids.get((kind, ident)):
                return None
            status, body = await self.engine_get(rules.lookup_path(kind, ident))
            if status == 404:
                if missing == "pass":
                    return _response(404, b"Not Found", body)
                return self.refuse(rules.Refused(
                    "not-this-hub", "%s %s does not exist; this hub creates it, labelled, first" % (kind, ident)))
            if status != 200:
                return _response(status, b"Error", body)
            try:
                info = json.loads(body)
            except ValueError:
                return _response(502, b"Bad Gateway", json.dumps({"message": "the engine's answer is not JSON"}).encode())
            verdict = rules.owner_of(self.policy, kind, ident, info)
            if verdict is True:
                full_id = info.get("Id") or info.get("ID")
                if full_id and kind in ("container", "service"):
                    if len(self._owned_ids) >= CACHE_SIZE:
                        self._owned_ids.clear()
                    self._owned_ids[(kind, full_id)] = True
                    if ident == full_id:
                        self._owned_ids[(kind, ident)] = True
                return None
            if verdict is False:
                return self.refuse(rules.not_owned(*original))
            kind, ident = verdict
            if not ident:
                return self.refuse(rules.not_owned(*original))

    def refuse(self, refusal):
        self.refused += 1
        log.warning("refused (rule %s): %s", refusal.rule, refusal.message)
        return _response(403, b"Forbidden", refusal.body().encode())

    # --- serving ----------------------------------------------------------------------

    async def judge(self, method, target, headers, body):
        """(response bytes to send instead, or None, and the target to send upstream)."""
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            verdict = rules.decide(self.policy, method, parts.path, query, _parse_body(headers, body))
        except rules.Refused as refusal:
            return self.refuse(refusal), None
        for kind, ident, missing in verdict.owned:
            answer = await self.confirm_owned(kind, ident, missing)
            if answer is not None:
                return answer, None
        self.allowed += 1
        log.debug("allowed %s %s", method, parts.path)
        if verdict.query is not query and verdict.query is not None:
            target = parts.path + "?" + urlencode(verdict.query, doseq=True)
        return None, target

    async def handle(self, client_reader, client_writer):
        upstream_writer = None
        try:
            try:
                request = await read_request(client_reader)
            except (BadRequest, ValueError, asyncio.IncompleteReadError) as e:
                client_writer.write(_response(400, b"Bad Request", json.dumps({"message": str(e)}).encode()))
                return
            if request is None:
                return
            method, target, headers, body = request
            answer, target = await self.judge(method, target, headers, body)
            if answer is not None:
                client_writer.write(answer)
                return
            upgrade = any(name.lower() == b"upgrade" for name, value in headers)
            head = ["%s %s HTTP/1.1" % (method, target)]
            head += ["%s: %s" % (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
                     if name.lower() not in _HOP_HEADERS]
            if body or method in ("POST", "PUT"):
                head.append("Content-Length: %d" % len(body))
            head += ["Connection: Upgrade", "Upgrade: tcp"] if upgrade else ["Connection: close"]
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.upstream)
            upstream_writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await upstream_writer.drain()
            await self._relay(client_reader, client_writer, upstream_reader, upstream_writer, upgrade)
        except (ConnectionError, OSError) as e:
            log.debug("connection ended: %s", e)
        finally:
            if upstream_writer is not None:
                upstream_writer.close()
            try:
                await client_writer.drain()
            except (ConnectionError, OSError):
                pass
            client_writer.close()

    async def _relay(self, client_reader, client_writer, upstream_reader, upstream_writer, upgrade):
        """Stream the engine's answer back until it closes; with an upgrade, also the client's bytes up."""

        async def down():
            while True:
                chunk = await upstream_reader.read(65536)
                if not chunk:
                    return
                client_writer.write(chunk)
                await client_writer.drain()

        async def up():
            while True:
                chunk = await client_reader.read(65536)
                if not chunk:
                    if upgrade and upstream_writer.can_write_eof():
                        upstream_writer.write_eof()
                        await asyncio.Event().wait()  # keep reading the engine's side
                    return  # a plain request's client went away: stop streaming to it
                if upgrade:
                    upstream_writer.write(chunk)
                    await upstream_writer.drain()

        tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
        try:
            done = (await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))[0]
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()

    async def serve(self, path, mode=0o660, group=None):
        """Listen on the Unix socket ``path`` (replacing a stale one), mode and group set."""
        if os.path.exists(path):
            os.unlink(path)
        self._server = await asyncio.start_unix_server(self.handle, path=path, limit=MAX_HEAD)
        if group is not None:
            os.chown(path, -1, group)
        os.chmod(path, mode)
        log.info("filtering the Docker API of %s for hub %s on %s", self.upstream, self.policy.hub, path)
        return self._server
