"""AKCP sensorProbe / securityProbe environment monitors (SPAGENT-MIB): see README.md."""
