"""Routers per domain; thin views over :mod:`tracing`."""

from . import analytics, audit, cases, contacts, investigations, linelists, ops, persons, places, sites

ROUTERS = [
    ops.public, ops.router, persons.router, cases.router, contacts.router, places.router, analytics.router,
    investigations.router, sites.router, linelists.router, audit.router,
]

__all__ = ["ROUTERS"]
