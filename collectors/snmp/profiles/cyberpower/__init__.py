"""CyberPower (CPS-MIB): see README.md."""
