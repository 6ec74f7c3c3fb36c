"""Huawei UPS5000 (HUAWEI-UPS-MIB): see README.md."""
