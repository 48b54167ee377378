"""Argument-list builders. Each returns the command as data; none of them runs anything."""
