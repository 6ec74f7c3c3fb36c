"""Socomec UPSes on Net Vision cards (SOCOMECUPS-MIB / SOCOMECUPS7-MIB): see README.md."""
