"""Helper programs run inside namespaces by the tests, the bench and the interop harness.

Each is a small standard-library program with its own ``main``: run it by path
(:func:`interop.netns.prog`) or as ``python3 -m interop.progs.<name>``.
"""
