"""The daemon's end of the control socket: JSON lines in, answers out.

:func:`serve` listens; :func:`handler` answers each request by the op table of
:mod:`l2tpv3.control.protocol`, running it on the daemon's :class:`Operations`.

The socket never harms the host or the daemon:

* Its path: only a stale socket is removed before listening (a socket file on which a
  connect is refused: nobody listens). A regular file, a directory, a symbolic link, a
  socket somebody listens on or one of another kind, and a missing directory are each a
  one-line :class:`~l2tpv3.errors.ControlError`, and nothing is removed. On close the
  socket is removed only if the path still is the socket bound (same device and inode).
* Its peers: the socket file is mode 0600, or 0660 with ``group``; each connection's
  credentials (SO_PEERCRED) are checked too. Root, the daemon's own effective uid and the
  members of ``group`` (primary or supplementary group of the connecting process) are
  served; anyone else gets one error answer, and the first refusal of each uid is logged.
* Its cost (:class:`Limits`): a request line is at most 64 KiB (one error answer, then
  the connection is closed), a begun request must be complete within 10 s, an answer
  taken within 10 s, and a connection with no request for 30 s is closed. At most 64
  connections are served at once: over the limit the longest idle one is closed to make
  room, or, if none is idle, the new one gets one error answer and is closed; a burst
  over the limit is logged once. A slow client thus holds at most about twice the
  request limit of buffered data.
* Every error answer of :func:`answer` and of the server is one line: line breaks in it
  (from a client's text quoted in it) are escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from l2tpv3.control.protocol import MAX_REQUEST, Operations, decode_request
from l2tpv3.errors import ControlError, L2TPError

__all__ = [
    "ControlServer",
    "Handler",
    "Limits",
    "Streamer",
    "answer",
    "group_id",
    "handler",
    "serve",
]

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# A request answered by a stream (``capture``): it has the connection from then on and
# writes its own answer line; the connection is closed when it returns.
Streamer = Callable[[dict[str, Any], asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

log = logging.getLogger("l2tpv3d")

# Linux's <asm-generic/socket.h>; Python does not name it.
_SO_PEERGROUPS: Final = getattr(socket, "SO_PEERGROUPS", 59)
_UCRED: Final = struct.Struct("3i")
# Every character str.splitlines() breaks at, as its escape.
_LINE_BREAKS: Final = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}
# Seconds a connection turned away may still send its request.
_LINGER: Final = 1.0
# Refusals are logged once per uid; at most this many uids are remembered.
_MAX_REMEMBERED_UIDS: Final = 4096


def one_line(text: str) -> str:
    """``text`` with its line breaks escaped (``\\n``, ``\\u2028``, ...)."""
    return text.translate(_LINE_BREAKS)


def answer(ops: Operations, message: dict[str, Any]) -> dict[str, Any]:
    """Run one request on ``ops``; every failure becomes a one-line error answer."""
    try:
        return {"ok": True, "result": decode_request(message).run(ops)}
    except L2TPError as exc:
        return {"ok": False, "error": one_line(str(exc))}
    except (TypeError, ValueError, KeyError) as exc:
        return {"ok": False, "error": one_line(f"malformed request: {exc}")}
    except Exception as exc:
        # A bug of ours must not take the pseudowires down with it: answer, log
        # one line (the traceback only with -v), carry on.
        log.error("internal error handling %r: %r", message.get("op"), exc)
        log.debug("traceback", exc_info=True)
        return {"ok": False, "error": one_line(f"internal error: {exc!r}")}


def handler(ops: Operations) -> Handler:
    """The :func:`serve` handler that answers with :func:`answer`."""

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        return answer(ops, message)

    return handle


def group_id(name: str) -> int:
    """``--group``: a group name, or a numeric gid (ControlError if unknown)."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise ControlError(f'unknown group "{name}"') from None


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may cost the daemon."""

    # The longest request line, in bytes.
    request_bytes: int = MAX_REQUEST
    # Seconds to complete a request once begun, and to take an answer.
    read_timeout: float = 10.0
    # Seconds a connection may wait before its next request (after connecting, or after
    # its last answer).
    idle_timeout: float = 30.0
    # Connections served at once.
    connections: int = 64


@dataclass(slots=True)
class _Client:
    writer: asyncio.StreamWriter
    # When it began waiting for its next request; None while one is read or answered.
    idle_since: float | None = None
    admitted: bool = False


def _error(text: str) -> dict[str, Any]:
    return {"ok": False, "error": text}


class ControlServer(asyncio.AbstractServer):
    """The listening control socket and its connections (made by :func:`serve`).

    An :class:`asyncio.AbstractServer` whose :meth:`close` also closes the connections
    and removes the socket file."""

    def __init__(
        self,
        path: str,
        handler: Handler,
        group: int | None,
        limits: Limits,
        streams: dict[str, Streamer] | None = None,
    ) -> None:
        self.path = path
        self._streams = streams or {}
        self.limits = limits
        self.group = group
        # Connections turned away, and idle ones closed, over the connection limit.
        self.refused_busy = 0
        self.evicted = 0
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: dict[asyncio.Task[Any], _Client] = {}
        self._refused_uids: set[int] = set()
        self._burst: tuple[int, int] | None = None
        self._closing = False
        self._lingering = 0

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return sum(1 for c in self._clients.values() if c.admitted)

    # -- the socket file ------------------------------------------------------------

    async def _listen(self) -> None:
        path = self.path
        _claim(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177)
            try:
                sock.bind(path)
            finally:
                os.umask(old_umask)
            st = os.lstat(path)
            self._inode = (st.st_dev, st.st_ino)
            if self.group is not None:
                os.chown(path, -1, self.group)
                os.chmod(path, 0o660)
            else:
                os.chmod(path, 0o600)
            self._server = await asyncio.start_unix_server(
                self._on_client, path=None, sock=sock, limit=self.limits.request_bytes
            )
        except OSError as exc:
            sock.close()
            self._unlink()
            if exc.errno == errno.ENOENT:
                why = "no such directory"
            elif exc.errno == errno.EADDRINUSE:
                why = "it exists (not removed)"
            else:
                why = exc.strerror or str(exc)
            raise ControlError(f"cannot listen on {path}: {why}") from None

    def _unlink(self) -> None:
        """Remove the socket file if it still is the one bound here."""
        if self._inode is None:
            return
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        self._inode = None

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening, remove the socket file, close every connection."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        self._unlink()
        for client in self._clients.values():
            client.writer.close()

    async def wait_closed(self) -> None:
        """Wait until every connection has ended (aborted after a second, then cancelled)."""
        me = asyncio.current_task()
        tasks = {t for t in self._clients if t is not me}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                client = self._clients.get(task)
                if client is not None:
                    client.writer.transport.abort()
            if pending:
                _, pending = await asyncio.wait(pending, timeout=1.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()

    async def aclose(self) -> None:
        """:meth:`close`, then :meth:`wait_closed`."""
        self.close()
        await self.wait_closed()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._listening().get_loop()

    def is_serving(self) -> bool:
        return self._server is not None and not self._closing and self._server.is_serving()

    async def start_serving(self) -> None:
        await self._listening().start_serving()

    async def serve_forever(self) -> None:
        await self._listening().serve_forever()

    def _listening(self) -> asyncio.AbstractServer:
        if self._server is None:
            raise RuntimeError("the control socket is not listening")
        return self._server

    # -- one connection ---------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        client = _Client(writer)
        self._clients[task] = client
        try:
            if self._closing:
                return
            refusal = self._refusal(writer)
            if refusal is not None:
                await self._turn_away(reader, writer, refusal)
                return
            if not self._admit():
                busy = _error(
                    f"l2tpv3d is busy: {self.limits.connections} control connections "
                    "are open (too many connections); try again"
                )
                await self._turn_away(reader, writer, busy)
                return
            client.admitted = True
            await self._converse(reader, client)
        except (ConnectionError, asyncio.CancelledError):
            # A client gone, or the daemon stopping: neither is worth a traceback (a
            # connection task ending cancelled is logged as one by asyncio).
            pass
        finally:
            del self._clients[task]
            self._end_of_burst()
            await self._close(writer)

    async def _converse(self, reader: asyncio.StreamReader, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        limits = self.limits
        writer = client.writer
        while True:
            client.idle_since = loop.time()
            try:
                line = await asyncio.wait_for(reader.read(1), limits.idle_timeout)
            except TimeoutError:
                return
            client.idle_since = None
            if not line:
                return
            if line != b"\n":
                try:
                    line += await asyncio.wait_for(reader.readline(), limits.read_timeout)
                except TimeoutError:
                    await self._send(
                        writer, _error(f"request not completed within {limits.read_timeout:g} s")
                    )
                    return
                except ValueError:  # asyncio.LimitOverrunError, as readline raises it
                    await self._send(
                        writer, _error(f"request longer than {limits.request_bytes} bytes")
                    )
                    return
            if self._closing or writer.is_closing():
                return  # the daemon is stopping: no new request is run
            streamer = self._streamer(line)
            if streamer is not None:
                await streamer[0](streamer[1], reader, writer)
                return
            if not await self._send(writer, await self._reply(line)):
                return

    def _streamer(self, line: bytes) -> tuple[Streamer, dict[str, Any]] | None:
        """The streamer of the request, if it is one (anything else: _reply)."""
        if not self._streams:
            return None
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(message, dict):
            return None
        op = message.get("op")
        streamer = self._streams.get(op) if isinstance(op, str) else None
        return None if streamer is None else (streamer, message)

    async def _reply(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except RecursionError:
            return _error("malformed request: nested too deeply")
        except ValueError as exc:
            return _error(f"malformed request: {exc}")
        if not isinstance(message, dict):
            return _error("malformed request: not a JSON object")
        return await self._handler(message)

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> bool:
        """Write one answer line; False if the client did not take it in time."""
        if writer.is_closing():
            return False
        writer.write(json.dumps(reply).encode() + b"\n")
        try:
            await asyncio.wait_for(writer.drain(), self.limits.read_timeout)
        except TimeoutError:
            writer.transport.abort()
            return False
        return True

    async def _turn_away(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: dict[str, Any]
    ) -> None:
        """Answer a connection that is not served, before reading its request: then, for
        up to a second, let the client send it (else its send could fail before it
        reads the answer) and discard it."""
        if not await self._send(writer, reply) or self._lingering >= self.limits.connections:
            return
        self._lingering += 1
        try:
            writer.write_eof()
            async with asyncio.timeout(_LINGER):
                while await reader.read(self.limits.request_bytes):
                    pass
        except (OSError, TimeoutError):
            pass
        finally:
            self._lingering -= 1

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), self.limits.read_timeout)
        except (OSError, TimeoutError, asyncio.CancelledError):
            writer.transport.abort()

    # -- who may connect, and how many --------------------------------------------------

    def _refusal(self, writer: asyncio.StreamWriter) -> dict[str, Any] | None:
        """None if the peer may use the socket, else the answer refusing it."""
        sock = writer.get_extra_info("socket")
        try:
            pid, uid, gid = _UCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            )
        except (AttributeError, OSError, struct.error):
            pid, uid, gid = 0, -1, -1
        # The daemon's uid now: it may have dropped root (--user) since it started.
        euid = os.geteuid()
        if uid in (0, euid):
            return None
        if (
            uid >= 0
            and self.group is not None
            and (gid == self.group or self.group in _peer_groups(sock, uid, self.group))
        ):
            return None
        if uid not in self._refused_uids:
            if len(self._refused_uids) < _MAX_REMEMBERED_UIDS:
                self._refused_uids.add(uid)
            allowed = f"root and uid {euid}"
            if self.group is not None:
                allowed += f" and group {self.group}"
            log.warning("control socket: refused uid %d (pid %d): only %s", uid, pid, allowed)
        if uid < 0:
            return _error("permission denied: the peer's credentials are unknown")
        return _error(f"permission denied: uid {uid} may not use l2tpv3d's control socket")

    def _admit(self) -> bool:
        """Whether one more connection may be served: under the limit, or after closing
        the longest idle one."""
        clients = [(t, c) for t, c in self._clients.items() if c.admitted]
        if len(clients) < self.limits.connections:
            return True
        if self._burst is None:
            self._burst = (self.evicted, self.refused_busy)
            log.warning(
                "control socket: %d connections open (the limit): closing idle ones, "
                "refusing new ones while none is idle",
                len(clients),
            )
        idle = [(c.idle_since, id(t), c) for t, c in clients if c.idle_since is not None]
        if idle:
            _, _, oldest = min(idle)
            oldest.admitted = False
            oldest.writer.transport.abort()
            self.evicted += 1
            return True
        self.refused_busy += 1
        return False

    def _end_of_burst(self) -> None:
        if self._burst is not None and self.connections <= self.limits.connections // 2:
            evicted, refused = self._burst
            self._burst = None
            log.info(
                "control socket: back under the connection limit; %d idle connections "
                "closed and %d refused meanwhile",
                self.evicted - evicted,
                self.refused_busy - refused,
            )


def _peer_groups(sock: Any, uid: int, group: int) -> tuple[int, ...]:
    """The connecting process's supplementary groups (SO_PEERGROUPS), or else the
    group database's members of ``group`` if ``uid`` is one of them."""
    for size in (64, 65536):
        try:
            data = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * size)
        except OSError as exc:
            if exc.errno == errno.ERANGE:
                continue
            break
        groups = array("I")
        groups.frombytes(data[: len(data) // 4 * 4])
        return tuple(groups)
    try:
        member = pwd.getpwuid(uid).pw_name in grp.getgrgid(group).gr_mem
    except KeyError:
        return ()
    return (group,) if member else ()


def _claim(path: str) -> None:
    """Make room for the socket at ``path``: remove a stale socket, and nothing else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ControlError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ControlError(f"cannot listen on {path}: it is a directory")
    if stat.S_ISLNK(st.st_mode):
        raise ControlError(f"cannot listen on {path}: it is a symbolic link (not removed)")
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"cannot listen on {path}: it exists and is not a socket (not removed)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # stale: nobody listens
        except FileNotFoundError:
            return
        except BlockingIOError:  # a full backlog: somebody listens
            raise ControlError(
                f"another l2tpv3d (or another program) is already listening on {path}"
            ) from None
        except OSError as exc:
            raise ControlError(
                f"cannot listen on {path}: a socket that is not a stale l2tpv3d socket "
                f"({exc.strerror or exc}; not removed)"
            ) from None
        else:
            raise ControlError(
                f"another l2tpv3d (or another program) is already listening on {path}"
            )
    with contextlib.suppress(FileNotFoundError):
        again = os.lstat(path)
        if (again.st_dev, again.st_ino) == (st.st_dev, st.st_ino):
            os.unlink(path)
            log.info("removed the stale control socket %s", path)


async def serve(
    path: str,
    handler: Handler,
    *,
    group: int | None = None,
    limits: Limits | None = None,
    streams: dict[str, Streamer] | None = None,
) -> ControlServer:
    """Listen on a Unix socket readable and writable by its owner only (mode 0600), or
    by its owner and ``group`` (mode 0660, the file's group set to it). ``streams``:
    the ops answered by a stream (``capture``), by name."""
    server = ControlServer(path, handler, group, limits or Limits(), streams)
    await server._listen()
    return server
