"""Aury-boot-style named managers and clients: thin look-ups over the container and the catalogue."""
