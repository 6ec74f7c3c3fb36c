"""Riedo / net-track E3METER intelligent power strips (NETTRACK-E3METER-SNMP-MIB): see README.md."""
