"""Phoenixtec Power (PPC-MIB) UPSes: see README.md."""
