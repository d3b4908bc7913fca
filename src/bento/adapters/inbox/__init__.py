"""Inbox adapters."""
