"""Least privilege: after start-up ``l2tpv3d`` keeps only the capabilities it still uses.

What the daemon does after start-up, and what each needs:

* CAP_NET_ADMIN: creating TAP devices (``TUNSETIFF`` on /dev/net/tun), setting their
  MTU, flags and offloads, and ``SO_RCVBUFFORCE``/``SO_SNDBUFFORCE`` on tunnel sockets.
* CAP_NET_RAW: the raw IP sockets of ``encap ip`` tunnels (protocol 115).
* CAP_NET_BIND_SERVICE: only if the ``--config`` file has a UDP tunnel whose
  ``udp_sport`` is below 1024 (L2TP's own port, 1701, is not): a tunnel added later
  through the control socket on such a port is refused with "permission denied".

Everything else goes: the permitted, effective and inheritable sets are cut to these,
the ambient set is cleared (the daemon never runs another program), the bounding set
loses every other capability when CAP_SETPCAP allows it, and ``PR_SET_NO_NEW_PRIVS`` is
set, so nothing executed later could gain a privilege back. With ``--user`` the
daemon also changes its uid, gid and supplementary groups (``PR_SET_KEEPCAPS`` keeps
the permitted set across ``setuid``). Capabilities are per thread on Linux: the drop is
made before the data path starts any thread, and :func:`drop` checks every thread.

Implemented with ctypes (glibc's ``capget``/``capset``/``prctl``); no library needed.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import pwd
import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CAP_DAC_OVERRIDE",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETPCAP",
    "CAP_SYS_ADMIN",
    "Dropped",
    "PrivilegeError",
    "User",
    "cap_names",
    "drop",
    "lookup_user",
    "needed_caps",
]

log = logging.getLogger("l2tpv3d")

CAP_DAC_OVERRIDE = 1
CAP_SETPCAP = 8
CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21

_NAMES = {
    CAP_DAC_OVERRIDE: "CAP_DAC_OVERRIDE",
    CAP_SETPCAP: "CAP_SETPCAP",
    CAP_NET_BIND_SERVICE: "CAP_NET_BIND_SERVICE",
    CAP_NET_ADMIN: "CAP_NET_ADMIN",
    CAP_NET_RAW: "CAP_NET_RAW",
    CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
}

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


class PrivilegeError(Exception):
    """The drop could not be made (the daemon must not run on with more than asked)."""


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg2: int = 0) -> int:
    return int(_libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(0),
                           ctypes.c_ulong(0), ctypes.c_ulong(0)))  # fmt: skip


def _mask(caps: Iterable[int]) -> int:
    m = 0
    for c in caps:
        m |= 1 << c
    return m


def _capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread, as 64-bit masks."""
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def cap_names(mask: int) -> list[str]:
    """The capabilities of a mask, by name (``cap_N`` for those not named here)."""
    return [_NAMES.get(i, f"cap_{i}") for i in range(64) if mask >> i & 1]


@dataclass(frozen=True)
class User:
    """What ``--user`` resolves to."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def lookup_user(name: str) -> User:
    """A user by name (or number): its uid, primary gid and supplementary groups."""
    try:
        pw = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
    except KeyError:
        raise PrivilegeError(f'unknown user "{name}"') from None
    groups = tuple(sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid))))
    return User(pw.pw_name, pw.pw_uid, pw.pw_gid, groups)


def needed_caps(udp_ports: Iterable[int]) -> frozenset[int]:
    """CAP_NET_ADMIN and CAP_NET_RAW, and CAP_NET_BIND_SERVICE if a port is below 1024."""
    caps = {CAP_NET_ADMIN, CAP_NET_RAW}
    if any(p < 1024 for p in udp_ports):
        caps.add(CAP_NET_BIND_SERVICE)
    return frozenset(caps)


@dataclass(frozen=True)
class Dropped:
    """The state after :func:`drop`, for the start-up log line."""

    uid: int
    effective: int
    bounding_dropped: bool

    def describe(self) -> str:
        caps = ", ".join(cap_names(self.effective)) or "none"
        bset = "" if self.bounding_dropped else " (bounding set unchanged: no CAP_SETPCAP)"
        return f"uid {self.uid}, capabilities {caps}, no_new_privs{bset}"


def drop(keep: Iterable[int], user: User | None = None) -> Dropped:
    """Keep only ``keep`` (those of them the process has), become ``user`` if given, set
    no_new_privs. Raises :class:`PrivilegeError` when a step fails."""
    keep_mask = _mask(keep)
    _, permitted, _ = _capget()
    keep_mask &= permitted
    missing = _mask(keep) & ~permitted
    if missing:
        log.warning("capabilities not held, so not kept: %s", ", ".join(cap_names(missing)))
    # The bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
    bounding_dropped = bool(permitted >> CAP_SETPCAP & 1)
    if bounding_dropped:
        for cap in range(_last_cap() + 1):
            if not keep_mask >> cap & 1 and _prctl(PR_CAPBSET_DROP, cap) != 0:
                if ctypes.get_errno() == errno.EINVAL:
                    break  # past the kernel's last capability (/proc/sys hidden)
                _check(-1, f"PR_CAPBSET_DROP {cap}")
    if user is not None:
        _check(_prctl(PR_SET_KEEPCAPS, 1), "PR_SET_KEEPCAPS")
        try:
            os.setgroups(list(user.groups))
            os.setresgid(user.gid, user.gid, user.gid)
            os.setresuid(user.uid, user.uid, user.uid)
        except OSError as exc:
            raise PrivilegeError(f'cannot become user "{user.name}": {exc.strerror}') from None
        _check(_prctl(PR_SET_KEEPCAPS, 0), "PR_SET_KEEPCAPS")
    _capset(keep_mask, keep_mask, 0)
    # Ambient capabilities would pass to a program run later; l2tpv3d runs none.
    if _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL) != 0:
        log.debug("no ambient capabilities to clear (kernel before 4.3)")
    _check(_prctl(PR_SET_NO_NEW_PRIVS, 1), "PR_SET_NO_NEW_PRIVS")
    effective, permitted, _ = _capget()
    if permitted & ~keep_mask or os.geteuid() != (user.uid if user else os.geteuid()):
        raise PrivilegeError("capabilities were not dropped")
    _check_threads(keep_mask)
    return Dropped(os.geteuid(), effective, bounding_dropped)


def _check_threads(keep_mask: int) -> None:
    """Log every other thread that still has more than ``keep_mask`` (capabilities are a
    per-thread attribute: a thread started before the drop keeps its own)."""
    me = str(threading.get_native_id())
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return
    for tid in tasks:
        if tid == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("CapEff:"):
                        eff = int(line.split()[1], 16)
                        if eff & ~keep_mask:
                            log.warning(
                                "thread %s started before the capability drop keeps %s",
                                tid,
                                ", ".join(cap_names(eff & ~keep_mask)),
                            )
        except OSError:
            continue
