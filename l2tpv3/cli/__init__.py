"""``l2tpv3``: the command line (main), the ``ip l2tp`` grammar (grammar), show output
(show), the far end's configuration (peerconfig) and tshark options (wireshark)."""
