"""Userspace L2TPv3 Ethernet pseudowire (RFC 3931, RFC 4719), driven like ``ip l2tp``."""

__version__ = "0.1.0"
