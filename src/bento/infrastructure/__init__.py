"""Infrastructure: settings, builders and the DI container — the only code that names
concrete adapters."""
