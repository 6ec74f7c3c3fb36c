"""Delta Electronics UPS (DeltaUPS-MIB agents): see README.md."""
