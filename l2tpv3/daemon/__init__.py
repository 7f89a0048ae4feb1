"""``l2tpv3d``: the registry of tunnels and sessions (core) and the entry point (main)."""
