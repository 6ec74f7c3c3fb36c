"""apc device profiles: every module here with a PROFILES tuple is registered (see ../README.md)."""
