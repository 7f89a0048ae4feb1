"""Exceptions shared by the configuration, the control protocol and the daemon."""

from __future__ import annotations


class L2TPError(Exception):
    """Base class: every message is one line fit to show a user as it is."""


class ConfigError(L2TPError, ValueError):
    """A configuration value is invalid; the message names the field and the value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f'invalid {field} "{value}": {reason}')


class MissingArgument(L2TPError):
    """A required option was not given (iproute2's ``missarg``)."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f'argument "{field}" is required')


class StateError(L2TPError):
    """The request does not fit the daemon's state: duplicate ID, missing tunnel, ..."""


class ControlError(L2TPError):
    """The control socket could not be reached or answered nonsense."""


class RefusedError(ControlError):
    """``l2tpv3d`` answered, and refused the request (its one-line reason)."""
