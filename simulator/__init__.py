"""The facility twin: a deterministic simulation of a GPU data centre for the demo, the tests
and the benchmarks.

- :mod:`simulator.physics` — GPU power/throughput/temperature, racks, cooling, power chain
  (every constant cites its source);
- :mod:`simulator.weather` — seasonal + daily outdoor temperature and humidity;
- :mod:`simulator.workload` — jobs with tenants and classes, pluggable placement;
- :mod:`simulator.gpus` — ``SimulatedGpus``, the twin's GPUs behind the ``GpuBackend`` interface;
- :mod:`simulator.facility` — ``FacilityTwin``: steps everything, returns
  :class:`simulator.readings.FacilitySnapshot`, renders metric-contract points;
- :mod:`simulator.backfill` — writes days of history straight into a store.

Only the command line, ``bench/`` and the tests import this package.
"""
