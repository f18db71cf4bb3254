"""``python -m pimsim.cli``."""

from pimsim.cli import main

main()
