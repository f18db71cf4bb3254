"""The ``pimsim`` command line: one module per command group, each a thin layer over the Python
API. User errors print one line and exit with status 2."""

from pimsim.cli import _compare, _cost, _explore, _oracle, _spec  # noqa: F401  (register the commands)
from pimsim.cli._common import EXIT_USER_ERROR, emit_table, main

__all__ = ["EXIT_USER_ERROR", "emit_table", "main"]
