"""`python -m sonotype` runs the command line."""

from .cli import main

main()
