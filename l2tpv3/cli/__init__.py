"""l2tpv3"""
