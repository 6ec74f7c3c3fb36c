"""Vertiv (ex-Emerson Network Power, enterprise .13400) UPS cards: see README.md."""
