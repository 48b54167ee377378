"""envplane: one spec of an app, run on every rung of the environment ladder."""

__version__ = "0.1.0"
