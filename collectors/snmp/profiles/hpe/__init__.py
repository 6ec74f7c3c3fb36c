"""HPE intelligent PDUs (CPQPOWER-MIB pdu3 branch): see README.md."""
