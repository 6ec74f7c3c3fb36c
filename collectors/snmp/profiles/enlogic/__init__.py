"""Enlogic rack PDUs (ENLOGIC-PDU-MIB): see README.md."""
