"""The control protocol between ``l2tpv3`` and ``l2tpv3d``: the op table and typed
records (protocol), the client's end (client) and the daemon's end (server)."""
