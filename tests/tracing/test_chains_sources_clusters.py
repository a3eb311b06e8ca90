"""Chains (up/down, via contacts or links), source candidates (溯源) and clusters."""

from __future__ import annotations

import pytest

from graph_models import ChainDirection, ChainVia, TransmissionLink, Visit
from tests.builders import at, case, contact, person
from tracing import chain, clusters, source_candidates
from tracing.errors import PersonNotFound
from tracing.store import GraphBatch


def _members(result) -> dict[str, int]:
    return {m.person_id: m.hops for m in result.members}


def test_downstream_chain_respects_time_and_hop_limit(store, now):
    store.apply(
        GraphBatch(
            persons=[case("A", at(10)), person("B"), person("C"), person("D"), person("OLD")],
            events=[
                contact("ab", "A", "B", at(8)),
                contact("bc", "B", "C", at(9)),
                contact("cd", "C", "D", at(11)),
                contact("b-old", "B", "OLD", at(7)),  # before B was reached: not onward spread
            ],
        )
    )
    assert _members(chain(store, "A", hops=3, now=now)) == {"A": 0, "B": 1, "C": 2, "D": 3}
    assert _members(chain(store, "A", hops=2, now=now)) == {"A": 0, "B": 1, "C": 2}
    c = next(m for m in chain(store, "A", hops=3, now=now).members if m.person_id == "C")
    assert (c.parent_id, c.reached_at, c.evidence) == ("B", at(9), "bc")


def test_upstream_chain_walks_back_in_time(store, now):
    store.apply(
        GraphBatch(
            persons=[case("Z", at(12)), person("Y"), person("X"), person("LATE")],
            events=[
                contact("yz", "Y", "Z", at(10)),
                contact("xy", "X", "Y", at(9)),
                contact("late-x", "LATE", "X", at(11)),  # after X's last useful moment: cannot be X's source
            ],
        )
    )
    result = chain(store, "Z", direction=ChainDirection.UP, hops=3, now=now)
    assert _members(result) == {"Z": 0, "Y": 1, "X": 2}


def test_chain_via_links_follows_who_infected_whom(store, now):
    store.apply(
        GraphBatch(
            persons=[person(p) for p in "ABCDE"],
            links=[
                TransmissionLink(infector="A", infectee="B"),
                TransmissionLink(infector="B", infectee="C"),
                TransmissionLink(infector="C", infectee="A"),  # a cycle in messy data must not loop
                TransmissionLink(infector="C", infectee="D"),
            ],
        )
    )
    down = chain(store, "A", via=ChainVia.LINKS, hops=5, now=now)
    assert _members(down) == {"A": 0, "B": 1, "C": 2, "D": 3}
    up = chain(store, "D", direction="up", via="links", hops=2, now=now)
    assert _members(up) == {"D": 0, "C": 1, "B": 2}
    assert next(m for m in up.members if m.person_id == "C").evidence == "link:C->D"
    with pytest.raises(PersonNotFound):
        chain(store, "nobody", now=now)


def test_source_candidates_are_ranked_by_linked_cases(store):
    store.apply(
        GraphBatch(
            persons=[
                case("NEW", at(16)), case("K1", at(5)), case("K2", at(6)),
                person("SPREADER"), person("FRIEND"), person("STRANGER"),
            ],
            events=[
                contact("e1", "NEW", "FRIEND", at(12)),
                contact("e2", "NEW", "SPREADER", at(13)),
                contact("e3", "SPREADER", "K1", at(4)),
                contact("e4", "SPREADER", "K2", at(5)),
                contact("e5", "NEW", "STRANGER", at(1)),  # before the 14-day look-back
            ],
            visits=[
                Visit(id="v1", person_id="NEW", place_id="MKT", start=at(11, 9), end=at(11, 10)),
                Visit(id="v2", person_id="K1", place_id="MKT", start=at(11, 9, 30), end=at(11, 11)),
            ],
        )
    )
    ranked = source_candidates(store, "NEW", now=at(20))
    assert [c.person_id for c in ranked] == ["SPREADER", "K1", "FRIEND"]
    assert ranked[0].linked_cases == ["K1", "K2"]
    assert ranked[1].is_case and ranked[1].evidence == ["covisit:v1+v2"]


def test_clusters_by_links_contacts_or_both(store):
    store.apply(
        GraphBatch(
            persons=[case("A", at(1)), case("B", at(2)), person("C"), case("X", at(3)), person("Y")],
            links=[TransmissionLink(infector="A", infectee="B"), TransmissionLink(infector="X", infectee="Y")],
            events=[contact("e1", "B", "C", at(2)), contact("e2", "C", "Y", at(3))],
        )
    )
    by_links = clusters(store)
    assert [(c.size, c.case_count, c.members) for c in by_links] == [(2, 2, ["A", "B"]), (2, 1, ["X", "Y"])]
    assert [c.members for c in clusters(store, via=ChainVia.CONTACTS)] == [["B", "C", "Y"]]
    both = clusters(store, via=None)
    assert [(c.id, c.size, c.case_count) for c in both] == [(1, 5, 3)]
    assert clusters(store, min_size=3) == []
