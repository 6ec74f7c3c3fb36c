"""PowerWalker UPSes on the EPPC network card (EPPC-MIB, .935.10): see README.md."""
