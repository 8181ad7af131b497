"""`python -m sonotype.cli` runs the command line."""

from . import main

main()
