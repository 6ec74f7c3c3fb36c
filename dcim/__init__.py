"""dcim: monitoring and energy optimisation for GPU data centres."""

__version__ = "0.1.0"
