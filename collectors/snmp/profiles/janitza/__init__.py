"""Janitza UMG power analysers (JANITZA-MIB): see README.md."""
