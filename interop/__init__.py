"""Interop harness: real peers for l2tpv3 on a machine whose kernel has no l2tp, and the
namespace toolkit the tests and the bench share.

``python3 -m interop build`` fetches a Debian kernel and writes a busybox initramfs;
``python3 -m interop kernel-peer -- <ip l2tp lines>`` boots it as a peer. The tests use
:func:`interop.lab.kernel_peer`. :mod:`interop.netns` (namespaces, veth, processes,
daemons) serves the namespace tests, the bench and this harness alike;
:mod:`interop.progs` holds the helper programs they run inside namespaces.
"""
