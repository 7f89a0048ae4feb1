"""l2tpv3d"""
