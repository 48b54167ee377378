"""Backends: each does one thing (a runtime, a database, a bucket store, ...) behind a small interface."""
