"""Time-respecting reachability on a contact multigraph.

An infection can only travel along a contact if the contact happens while
the upstream person could pass it on: after they were themselves exposed
(or, for the index case, after its infectious window opened) and before
they were isolated. These functions compute, hop layer by hop layer, the
earliest such arrival at every person (downstream) or the latest useful
departure (upstream).

Graph conventions (shared by every function here)
-------------------------------------------------
``G`` is an ``nx.MultiGraph``; each edge is one contact event keyed by its
id, with attributes ``start`` and ``end`` (aware datetimes) and ``usable``
(bool: whether this event can transmit under the policy in force). Node
attribute ``until`` (datetime or None) is when the person stopped being
able to pass infection on (isolation or "now"); None means no limit.
Intervals are half-open: a contact counts if ``end >= arrival`` and
``start < until``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import networkx as nx

__all__ = ["Reach", "iter_downstream_layers", "iter_upstream_layers", "evidence_path"]


@dataclass(frozen=True)
class Reach:
    """How a person was reached: after ``hops`` contacts, at time ``at``, from ``parent`` by ``event``."""

    hops: int
    at: datetime
    parent: str | None
    event: str | None


#: For every node, its improvements in layer order (layer, Reach). The last entry
#: whose layer is below k is what that node contributes when relaxing layer k.
History = dict[str, list[tuple[int, Reach]]]


def _entry_before(history: History, node: str, layer: int) -> tuple[int, Reach]:
    """The entry of ``node`` that was current while layer ``layer`` was being relaxed."""
    for entry in reversed(history[node]):
        if entry[0] < layer:
            return entry
    raise KeyError(node)  # pragma: no cover - a parent always has an earlier entry


def evidence_path(history: History, node: str, entry: int = -1) -> list[str]:
    """Event keys from the source to ``node``, along the path of its ``entry``-th improvement.

    ``entry`` defaults to the last (earliest-arrival) improvement; ``0`` is
    the fewest-hops one. The path is time-respecting by construction.
    """
    layer, reach = history[node][entry]
    path: list[str] = []
    while reach.parent is not None:
        path.append(reach.event)  # type: ignore[arg-type]
        layer, reach = _entry_before(history, reach.parent, layer)
    path.reverse()
    return path


def iter_downstream_layers(
    G: nx.MultiGraph,
    source: str,
    *,
    start: datetime,
    max_hops: int,
    until: Callable[[str], datetime | None] | None = None,
) -> Iterator[tuple[int, set[str], History]]:
    """Earliest time-respecting arrival from ``source``, one hop layer at a time.

    Bellman–Ford over hop layers: layer ``k`` relaxes the contacts of every
    person whose arrival improved in layer ``k - 1``, using that arrival.
    A person's arrival after ``k`` layers is thus the earliest arrival over
    all time-respecting paths of at most ``k`` contacts.

    Parameters
    ----------
    G : nx.MultiGraph
        See the module docstring. Only the neighbourhoods of nodes yielded
        as improved need to be present before the next layer is requested,
        so a caller may load the graph lazily between layers.
    source : str
        Where the infection starts (the index case).
    start : datetime
        When ``source`` starts being able to pass infection on (the opening
        of its infectious window).
    max_hops : int
        Number of layers to compute.
    until : callable, optional
        ``until(node)`` overrides the node attribute ``until``.

    Yields
    ------
    (layer, improved, history)
        After each layer: its number (1-based), the nodes whose arrival it
        improved, and the shared history (see :func:`evidence_path`).
        Layer 0, with ``{source}``, is yielded first.

    Notes
    -----
    A node's first entry in ``history`` has the fewest hops at which it can
    be reached at all; later entries are earlier arrivals over more hops.
    """
    limit = until or (lambda n: G.nodes[n].get("until") if n in G else None)
    history: History = {source: [(0, Reach(0, start, None, None))]}
    improved = {source}
    yield 0, improved, history
    for layer in range(1, max_hops + 1):
        best: dict[str, Reach] = {}
        for u in sorted(improved):
            if u not in G:
                continue
            arrival = history[u][-1][1].at
            stop = limit(u)
            for _, v, key, data in G.edges(u, keys=True, data=True):
                if v == source or not data.get("usable", True):
                    continue
                if data["end"] < arrival or (stop is not None and data["start"] >= stop):
                    continue
                at = max(data["start"], arrival)
                known = history.get(v)
                if known is not None and known[-1][1].at <= at:
                    continue
                candidate = best.get(v)
                if candidate is None or (at, u, key) < (candidate.at, candidate.parent, candidate.event):
                    best[v] = Reach(layer, at, u, key)
        for v, reach in best.items():
            history.setdefault(v, []).append((layer, reach))
        improved = set(best)
        yield layer, improved, history
        if not improved:
            return


def iter_upstream_layers(
    G: nx.MultiGraph,
    target: str,
    *,
    deadline: datetime,
    max_hops: int,
    not_before: Callable[[str], datetime | None] | None = None,
) -> Iterator[tuple[int, set[str], History]]:
    """Latest time-respecting departure towards ``target``, one hop layer at a time.

    The mirror image of :func:`iter_downstream_layers`: who could have
    passed an infection on to ``target`` by ``deadline`` (its onset or
    sampling), through at most ``max_hops`` contacts. ``Reach.at`` is the
    latest moment the upstream person must have been infectious for the
    path to work; a contact counts if ``start <= at(downstream)`` and the
    upstream person was not isolated before it (node attribute ``until``).

    ``not_before(node)`` (optional) is the earliest time a node's contacts
    may count, e.g. a look-back limit; events ending before it are ignored.
    """
    earliest = not_before or (lambda n: None)
    history: History = {target: [(0, Reach(0, deadline, None, None))]}
    improved = {target}
    yield 0, improved, history
    for layer in range(1, max_hops + 1):
        best: dict[str, Reach] = {}
        for v in sorted(improved):
            if v not in G:
                continue
            departure = history[v][-1][1].at
            floor = earliest(v)
            for _, u, key, data in G.edges(v, keys=True, data=True):
                if u == target or not data.get("usable", True):
                    continue
                if data["start"] > departure or (floor is not None and data["end"] < floor):
                    continue
                stop = G.nodes[u].get("until") if u in G else None
                if stop is not None and data["start"] >= stop:
                    continue
                at = min(data["end"], departure)
                known = history.get(u)
                if known is not None and known[-1][1].at >= at:
                    continue
                candidate = best.get(u)
                if candidate is None or (-at.timestamp(), v, key) < (-candidate.at.timestamp(), candidate.parent, candidate.event):
                    best[u] = Reach(layer, at, v, key)
        for u, reach in best.items():
            history.setdefault(u, []).append((layer, reach))
        improved = set(best)
        yield layer, improved, history
        if not improved:
            return
