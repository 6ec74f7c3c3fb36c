"""EAST (Guangdong East Power) UPSes on the iStars network card: see README.md."""
