"""`python -m sonotype.cli` runs the command line."""

from sonotype.cli import main

main()
