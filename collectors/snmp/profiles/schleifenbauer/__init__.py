"""Schleifenbauer hybrid/databus PDUs (SCHLEIFENBAUER-DATABUS-MIB): see README.md."""
