"""Region scoping: who sees which persons.

Regions are hierarchical codes: administrative digits (``11`` province >
``1101`` city > ``110105`` county) or slash paths (``Seoul/Gangnam-gu``, as
the DS4C importer writes them). A user with region ``R`` sees a person whose
region is ``R`` itself or below it: for digit codes any region starting with
``R``, for slash paths ``R`` or anything starting with ``R/``. A user without
a region (national level) and every admin see everyone. Persons *without* a
region are visible only to national users and admins: nobody can prove they
belong to a subtree.
"""

from __future__ import annotations

from ..store.port import region_subtree_bounds
from .models import Role, User

__all__ = ["in_region", "region_filter", "sees_all"]


def sees_all(user: User) -> bool:
    return user.role is Role.ADMIN or not user.region


def in_region(scope: str | None, region: str | None) -> bool:
    """Whether ``region`` lies in the subtree of ``scope`` (``None`` scope: everywhere)."""
    if not scope:
        return True
    if not region:
        return False
    exact, prefix = region_subtree_bounds(scope)
    return region == exact or region.startswith(prefix)


def region_filter(user: User) -> str | None:
    """The region subtree a user is limited to, or ``None`` for all."""
    return None if sees_all(user) else user.region


def visible(user: User, region: str | None) -> bool:
    return sees_all(user) or in_region(user.region, region)
