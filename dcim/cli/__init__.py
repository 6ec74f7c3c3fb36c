"""The ``dcim`` command line: the only place that wires the parts together.

Each subcommand is a module ``cmd_<name>.py`` in this package exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; ``main`` finds them by name, so adding a
command means adding one file.
"""
