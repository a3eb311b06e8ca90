"""Classification of a case's contacts into 密接 / 次密接 / 一般接触者 (pure, on networkx)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import networkx as nx

from graph_models import Closeness, ContactClass, ContactEvent, Person, TracedContact, TracingPolicy

from ..errors import CaseNotFound, NoInfectiousWindow
from ..store.port import ContactSpan
from .temporal import evidence_path, iter_downstream_layers

__all__ = ["classify_contacts", "infectious_window", "is_close_event", "close_span_rule", "add_event", "add_spans", "add_close_spans"]


def infectious_window(person: Person, *, policy: TracingPolicy, now: datetime) -> tuple[datetime, datetime]:
    """The half-open interval ``[start, end)`` in which ``person`` is taken to be infectious.

    ``start`` is onset (or, lacking it, sampling) minus ``policy.look_back``;
    ``end`` is isolation, or ``now`` while the person is not isolated (a
    future isolation time is not yet in force).

    Raises
    ------
    NoInfectiousWindow
        If the person has neither ``onset_at`` nor ``sampled_at``.
    """
    anchor = person.onset_at or person.sampled_at
    if anchor is None:
        raise NoInfectiousWindow(person.id)
    end = now if person.isolated_at is None else min(person.isolated_at, now)
    return anchor - policy.look_back, end


def is_close_event(event: ContactEvent, policy: TracingPolicy) -> bool:
    """Whether ``event`` is close enough, under ``policy``, to make a close contact."""
    return (
        event.closeness == Closeness.CLOSE
        and event.kind in policy.close_kinds
        and event.end - event.start >= policy.min_close_duration
    )


def close_span_rule(policy: TracingPolicy) -> Callable[[ContactSpan], bool]:
    """:func:`is_close_event` for :class:`ContactSpan` tuples, with the policy's sets resolved once."""
    close = Closeness.CLOSE.value
    kinds = frozenset(kind.value for kind in policy.close_kinds)
    minimum = policy.min_close_duration

    def is_close(span: ContactSpan) -> bool:
        return span.closeness == close and span.kind in kinds and span.end - span.start >= minimum

    return is_close


def add_event(G: nx.MultiGraph, event: ContactEvent, policy: TracingPolicy) -> None:
    """Add ``event`` to ``G`` in the shape :mod:`tracing.traversal.temporal` expects."""
    G.add_edge(event.a, event.b, key=event.id, start=event.start, end=event.end, usable=is_close_event(event, policy))


def add_spans(G: nx.MultiGraph, spans: Iterable[ContactSpan], policy: TracingPolicy) -> None:
    """Add contact events read as spans to ``G``, like :func:`add_event` does for one event."""
    is_close = close_span_rule(policy)
    add_edge = G.add_edge  # a plain loop: add_edges_from re-inspects every tuple, ~40% slower here
    for span in spans:
        add_edge(span.a, span.b, span.id, start=span.start, end=span.end, usable=is_close(span))


def add_close_spans(G: nx.MultiGraph, spans: Iterable[ContactSpan], policy: TracingPolicy) -> None:
    """Add only the close spans (``usable``): all a traversal step away from the case reads.

    Secondary contacts and chains only move along close contacts, and general
    contacts are contacts *with the case*; so a non-close span between two
    other persons changes no result, and skipping it saves its graph edge.
    """
    is_close = close_span_rule(policy)
    add_edge = G.add_edge
    for span in spans:
        if is_close(span):
            add_edge(span.a, span.b, span.id, start=span.start, end=span.end, usable=True)


def _overlaps(data: dict, start: datetime, end: datetime) -> bool:
    return data["end"] >= start and data["start"] < end


def classify_contacts(
    G: nx.MultiGraph,
    case_id: str,
    *,
    policy: TracingPolicy,
    window_start: datetime,
    window_end: datetime,
) -> list[TracedContact]:
    """Classify a case's contacts along time-respecting paths.

    Parameters
    ----------
    G : nx.MultiGraph
        The case's neighbourhood: every contact of the case in its window,
        and every contact of its close-contact candidates from the window's
        start on. Edges carry ``start``, ``end`` and ``usable`` (close under
        the policy); node attribute ``until`` is when a person was isolated
        (or "now"). Co-visits may be added as edges with ``usable=False``.
    case_id : str
    policy : TracingPolicy
    window_start, window_end : datetime
        The case's infectious window ``[start, end)``.

    Returns
    -------
    list of TracedContact
        Each person once, with the strongest class, sorted by class, then
        exposure time, then id:

        * 密接 (close): a usable contact with the case overlapping the window;
          exposed at ``max(event.start, window_start)``, the earliest such.
        * 次密接 (secondary, unless ``policy.trace_secondary`` is off): a
          usable contact with a close contact that ends at or after that
          close contact's first exposure to the case and starts before the
          close contact's isolation; exposed at the earliest such moment.
        * 一般接触者 (general, unless ``policy.trace_general`` is off): any
          other contact with the case overlapping the window.

    Raises
    ------
    CaseNotFound
        If ``case_id`` is not in ``G``.
    """
    if case_id not in G:
        raise CaseNotFound(case_id)
    hops = 2 if policy.trace_secondary else 1

    def until(node: str) -> datetime | None:
        return window_end if node == case_id else G.nodes[node].get("until")

    history = {}
    for _, _, history in iter_downstream_layers(G, case_id, start=window_start, max_hops=hops, until=until):
        pass

    contacts: dict[str, TracedContact] = {}
    for person_id, entries in history.items():
        first_layer, first = entries[0]
        if first_layer == 0:
            continue
        if first_layer == 1:
            count = sum(
                1
                for data in G.get_edge_data(case_id, person_id).values()
                if data.get("usable", True) and _overlaps(data, window_start, window_end)
            )
            contacts[person_id] = TracedContact(
                case_id=case_id, person_id=person_id, contact_class=ContactClass.CLOSE, source_id=case_id,
                exposed_at=first.at, evidence=evidence_path(history, person_id, 0), exposure_count=count,
            )
        else:
            parent_until = G.nodes[first.parent].get("until")
            parent_arrival = history[first.parent][0][1].at
            count = sum(
                1
                for data in G.get_edge_data(first.parent, person_id).values()
                if data.get("usable", True)
                and data["end"] >= parent_arrival
                and (parent_until is None or data["start"] < parent_until)
            )
            contacts[person_id] = TracedContact(
                case_id=case_id, person_id=person_id, contact_class=ContactClass.SECONDARY,
                source_id=first.parent, exposed_at=first.at, evidence=evidence_path(history, person_id, 0),
                exposure_count=max(count, 1),
            )

    if policy.trace_general:
        for person_id in G.neighbors(case_id):
            if person_id in contacts or person_id == case_id:
                continue
            overlapping = sorted(
                (max(data["start"], window_start), key)
                for key, data in G.get_edge_data(case_id, person_id).items()
                if _overlaps(data, window_start, window_end)
            )
            if overlapping:
                exposed_at, key = overlapping[0]
                contacts[person_id] = TracedContact(
                    case_id=case_id, person_id=person_id, contact_class=ContactClass.GENERAL, source_id=case_id,
                    exposed_at=exposed_at, evidence=[key], exposure_count=len(overlapping),
                )

    return sorted(contacts.values(), key=lambda c: (c.contact_class.rank, c.exposed_at, c.person_id))
