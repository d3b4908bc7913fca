"""Shared fixtures for tests against real servers (one folder per technology)."""
