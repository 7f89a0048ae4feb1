"""Interop harness: real peers for l2tpv3 on a machine whose kernel has no l2tp.

``python3 -m interop build`` fetches a Debian kernel and writes a busybox initramfs;
``python3 -m interop kernel-peer -- <ip l2tp lines>`` boots it as a peer. The tests use
:func:`interop.lab.kernel_peer`.
"""
