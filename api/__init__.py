"""HTTP API of the tracing service (FastAPI). Thin routers over :mod:`tracing`."""
