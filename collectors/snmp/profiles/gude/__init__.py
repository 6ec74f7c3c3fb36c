"""Gude Expert Power Control / Expert PDU (GUDEADS-*-MIB, one branch per product): see README.md."""
