"""Stulz precision air conditioning on the WIB8000 web interface board: see README.md."""
