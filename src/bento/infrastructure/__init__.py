"""Infrastructure, the composition root: the backend catalogue (`backends`), settings, builders
and the DI container — the only code that names concrete adapters."""
