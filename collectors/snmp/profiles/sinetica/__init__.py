"""Sinetica / Netcom UPSController cards, also in Mitsubishi UPSes (NETCOM-UPS-MIB): see README.md."""
