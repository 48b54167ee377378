"""Pytest configuration shared by all tiers."""
