"""Rittal CMC-TC (RITTAL-CMC-TC-MIB) cooling: see README.md."""
