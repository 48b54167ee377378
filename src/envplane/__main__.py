"""`python -m envplane` is the envplane CLI."""

from envplane.cli import run

run()
