"""The daemon's side of liveness: a timer per session around the sans-I/O state machine
(:class:`l2tpv3.proto.liveness.Liveness`), the TAP's carrier, probes, and hooks.

The timer reads the session's timestamps (``last_rx``, ``last_arp``; the tunnel's
:class:`~l2tpv3.proto.liveness.ControlChannel` for HELLO), which both data paths keep
per packet without calling into Python, and sleeps until the state machine's next
deadline. Hooks (``on_up`` / ``on_down``) come from the config file only; they run
without a shell, with TUNNEL_ID, SESSION_ID, IFNAME and L2TPV3_STATE in the
environment, killed by PID after HOOK_TIMEOUT seconds; their exit status is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass

from l2tpv3.config import LivenessMode, SessionConfig
from l2tpv3.constants import HOOK_TIMEOUT
from l2tpv3.errors import L2TPError
from l2tpv3.io.api import SessionPortAPI, TunnelPortAPI
from l2tpv3.proto.liveness import ControlChannel, Liveness, liveness_mac

__all__ = ["LivenessDriver", "LivenessReport", "run_hook"]

log = logging.getLogger("l2tpv3d")


@dataclass(frozen=True, slots=True)
class LivenessReport:
    """What ``show`` says of a session's liveness (control/protocol.py LivenessState)."""

    state: str
    last_rx_ago: float | None
    last_seen_ago: float | None
    transitions: int
    mac: str | None


async def run_hook(argv: tuple[str, ...], env: dict[str, str], what: str, timeout: float) -> None:
    """Run one hook without a shell; kill it (by PID) after ``timeout`` seconds."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        log.warning("%s: cannot run %s: %s", what, argv[0], exc.strerror)
        return
    try:
        status = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        log.warning("%s: %s (pid %d) killed after %g s", what, argv[0], proc.pid, timeout)
        return
    if status == 0:
        log.info("%s: %s exited with status 0", what, argv[0])
    else:
        log.warning("%s: %s exited with status %d", what, argv[0], status)


class LivenessDriver:
    """One session's liveness, on the asyncio loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: SessionConfig,
        port: SessionPortAPI,
        tport: TunnelPortAPI,
        channel: ControlChannel,
        hook_timeout: float = HOOK_TIMEOUT,
    ) -> None:
        self.loop = loop
        self.config = config
        self.port = port
        self.tport = tport
        self.channel = channel
        self.hook_timeout = hook_timeout
        mode = config.liveness
        self.mac = liveness_mac(config.tunnel_id, config.session_id)
        if mode is LivenessMode.ARP:
            port.session.watch_arp(self.mac)
        self.machine = Liveness(
            mode,
            time.monotonic(),
            config.liveness_interval,
            config.liveness_dead,
            self.mac,
            config.liveness_addr,
        )
        self._hooks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.Handle | None = loop.call_soon(self._tick)

    def _sign(self) -> float:
        mode = self.machine.mode
        s = self.port.session
        if mode is LivenessMode.IDLE:
            return s.last_rx
        if mode is LivenessMode.ARP:
            return s.last_arp
        return self.channel.last_heard

    def _tick(self) -> None:
        now = time.monotonic()
        m = self.machine
        try:
            m.seen(self._sign())
            step = m.poll(now)
            if step.carrier is not None:
                self._transition(step.carrier)
            for frame in step.frames:
                self.port.inject(frame)
            if step.hello:
                self.tport.send_control(self.channel.hello())
        finally:
            # Whatever one tick met, the session keeps being watched.
            delay = m.next_deadline(now) - time.monotonic()
            self._timer = self.loop.call_later(max(delay, 0.0), self._tick)

    def _transition(self, up: bool) -> None:
        tap = self.port.tap
        cfg = self.config
        state = "up" if up else "down"
        try:
            tap.set_carrier(up)
        except L2TPError as exc:
            log.warning("%s", exc)
        log.warning(
            "session %d in tunnel %d: peer %s (liveness %s): carrier %s on %s",
            cfg.session_id,
            cfg.tunnel_id,
            state,
            cfg.liveness.value,
            "on" if up else "off",
            tap.name,
        )
        argv = cfg.on_up if up else cfg.on_down
        if argv:
            env = {
                "TUNNEL_ID": str(cfg.tunnel_id),
                "SESSION_ID": str(cfg.session_id),
                "IFNAME": tap.name,
                "L2TPV3_STATE": state,
            }
            what = f"session {cfg.session_id} in tunnel {cfg.tunnel_id}: on_{state}"
            task = self.loop.create_task(self._run_hook(argv, env, what))
            self._hooks.append(task)
            task.add_done_callback(self._hooks.remove)

    async def _run_hook(self, argv: tuple[str, ...], env: dict[str, str], what: str) -> None:
        # One at a time and in order: on_down then on_up of a quick flap.
        async with self._lock:
            await run_hook(argv, env, what, self.hook_timeout)

    def report(self) -> LivenessReport:
        now = time.monotonic()
        m = self.machine
        m.seen(self._sign())
        last_rx = self.port.session.last_rx
        return LivenessReport(
            state="up" if m.up else "down",
            last_rx_ago=round(max(now - last_rx, 0.0), 3) if last_rx > 0 else None,
            last_seen_ago=(
                round(max(now - m.last_seen, 0.0), 3) if m.last_seen is not None else None
            ),
            transitions=m.transitions,
            mac=self.mac.hex(":") if m.mode is LivenessMode.ARP else None,
        )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Hooks already running finish (each is time-limited); none start any more.
