"""systemd's notification protocol (sd_notify(3)), written by hand: one datagram of
``KEY=VALUE`` lines to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@``
names the abstract namespace). Without ``$NOTIFY_SOCKET`` nothing is sent.

``l2tpv3d`` sends ``READY=1`` once its control socket listens and the ``--config``
tunnels are up, ``WATCHDOG=1`` every ``$WATCHDOG_USEC``/2 while its event loop runs
(when ``$WATCHDOG_PID``, if set, is its own pid) and ``STOPPING=1`` when it begins to stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger("l2tpv3d")


class Notifier:
    """The daemon's end of ``$NOTIFY_SOCKET`` (inert when the variable is unset)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if path.startswith("@"):
            self.address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self.address = path
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or (pid.isdigit() and int(pid) == os.getpid())
        if self.address is not None and usec.isdigit() and int(usec) > 0 and mine:
            self.watchdog_interval = int(usec) / 2e6
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram; False (logged once) if it cannot be sent."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("sd_notify to %s failed: %s", self.address, exc.strerror or exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    async def watchdog(self) -> None:
        """Send WATCHDOG=1 every WATCHDOG_USEC/2 until cancelled (returns at once when
        no watchdog is asked for)."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
