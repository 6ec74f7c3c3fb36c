"""Panduit SmartZone G5 intelligent PDUs (PANDUIT-MIB): see README.md."""
