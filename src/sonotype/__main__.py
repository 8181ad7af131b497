"""`python -m sonotype` runs the command line."""

from sonotype.cli import main

main()
