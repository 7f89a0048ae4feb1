"""The client's end of the control socket: one request, one answer.

:func:`call` sends a request record of :mod:`l2tpv3.control.protocol` and returns its
typed result; :func:`request` is the raw JSON-lines exchange under it.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Mapping
from typing import Any, TypeVar

from l2tpv3.control.protocol import MAX_MESSAGE, Request
from l2tpv3.errors import ControlError, RefusedError

__all__ = ["call", "request"]

_R = TypeVar("_R")


def call(path: str, req: Request[_R], timeout: float = 30.0) -> _R:
    """Send ``req``; its result, read by the op table (ControlError if the daemon cannot
    be reached or answers nonsense, RefusedError if it refuses)."""
    answer = request(path, req.to_json(), timeout)
    if answer.get("ok") is not True:
        raise RefusedError(str(answer.get("error") or "l2tpv3d refused the request"))
    return req.result(answer.get("result"))


def request(path: str, message: Mapping[str, object], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request and wait for its answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            # Answered and closed before it read the request (a refusal): read why.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(json.dumps(dict(message)).encode() + b"\n")
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_MESSAGE:
                    raise ControlError(f"answer from {path} is too large")
    except FileNotFoundError:
        raise ControlError(
            f"cannot reach l2tpv3d at {path}: no such socket (is it running?)"
        ) from None
    except ConnectionRefusedError:
        raise ControlError(
            f"cannot reach l2tpv3d at {path}: connection refused (is it running?)"
        ) from None
    except PermissionError:
        raise ControlError(f"cannot reach l2tpv3d at {path}: permission denied") from None
    except TimeoutError:
        raise ControlError(f"l2tpv3d at {path} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise ControlError(f"cannot reach l2tpv3d at {path}: {exc.strerror or exc}") from None
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ControlError(f"l2tpv3d at {path} sent a malformed answer") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlError(f"l2tpv3d at {path} sent a malformed answer")
    return answer
