"""Region scoping in the routes: out-of-scope persons are answered exactly like unknown ones (404)."""

from __future__ import annotations

from collections.abc import Iterable

from graph_models import Person
from tracing.auth import User, region_filter, sees_all, visible
from tracing.errors import CaseNotFound, PersonNotFound
from tracing.store import GraphStore

__all__ = ["visible_case", "visible_ids", "visible_person", "region_filter", "check_region_param"]


def visible_person(store: GraphStore, user: User, person_id: str) -> Person:
    person = store.get_persons([person_id]).get(person_id)
    if person is None or not visible(user, person.region):
        raise PersonNotFound(person_id)
    return person


def visible_case(store: GraphStore, user: User, case_id: str) -> Person:
    person = store.get_persons([case_id]).get(case_id)
    if person is None or not visible(user, person.region):
        raise CaseNotFound(case_id)
    return person


def visible_ids(store: GraphStore, user: User, person_ids: Iterable[str]) -> set[str]:
    ids = set(person_ids)
    if sees_all(user):
        return ids
    return {pid for pid, p in store.get_persons(ids).items() if visible(user, p.region)}


def check_region_param(user: User, region: str | None) -> str | None:
    """The narrower of the user's scope and a ``region`` query filter; ``""`` if they do not overlap."""
    from tracing.auth import in_region

    scope = region_filter(user)
    if region is None:
        return scope
    if scope is None or in_region(scope, region):
        return region
    if in_region(region, scope):
        return scope
    return ""
