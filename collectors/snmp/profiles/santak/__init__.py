"""Santak UPSes on the WebPower Pro II card: see README.md."""
