"""SNMP collection: one asyncio pysnmp engine per process (engine.py), device profiles as data
(profiles/), the decoder that turns raw varbinds into metric-contract points (decode.py) and
the Collector the runner schedules (collector.py)."""
