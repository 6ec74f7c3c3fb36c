"""HW group Poseidon environment monitors (POSEIDON-MIB): see README.md."""
