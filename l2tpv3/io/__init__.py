"""The data path's I/O: TAP devices (tap), underlay sockets (sockets), the ports'
shared interface (api), the pure-Python asyncio ports (ports), the ports around the C
engine (engine) and the one chooser (datapath)."""
