"""`python -m envplane` is the envplane CLI."""

from envplane.cli.main import run

run()
