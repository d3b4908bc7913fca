"""Test support: in-memory fixtures, collectors, and the port contract suites."""
