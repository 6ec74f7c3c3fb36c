"""The optimizer: PUE model, GPU power caps with leases, placement, and the daemon.

Modules (decisions are plain functions over arrays; I/O lives at the edges):

- ``features``, ``pue_model``   — PUE regressor from the store (time-ordered hold-out, persisted);
- ``throughput_curve``          — power→throughput curves per GPU model × job class (prior + learning);
- ``power_caps``                — pure cap policy (loss bounds, budgets, step bound, hardware range);
- ``placement``, ``schedulers`` — marginal-energy placement; Slurm weights / Kubernetes labels;
- ``fleet``                     — the store's telemetry as arrays, budgets of racks/PDUs/cooling/site;
- ``desired_state``, ``actuator``, ``agent`` — leases, direct or published actuation, node agent;
- ``daemon``, ``api``           — the APScheduler loop with its safety rails; the HTTP API.

Nothing here imports ``simulator`` or ``collectors``: the command line wires backends in.
"""
