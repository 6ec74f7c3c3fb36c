"""Riello (RPS SpA) UPSes on the NetMan cards: see README.md."""
