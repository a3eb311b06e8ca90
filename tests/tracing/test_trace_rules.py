"""The time rules of tracing, on small hand-built graphs, against every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from graph_models import ContactClass, ContactKind, Person, TracingPolicy, Visit
from tests.builders import at, case, contact, person
from tracing import apply_and_rederive, trace_case
from tracing.errors import CaseNotFound, NoInfectiousWindow
from tracing.store import GraphBatch

LOOK_BACK = TracingPolicy().look_back  # 4 days


def classes(result) -> dict[str, ContactClass]:
    return {c.person_id: c.contact_class for c in result.contacts}


def test_window_starts_exactly_look_back_before_onset(store, now):
    onset = at(10, 12)
    window_start = onset - LOOK_BACK
    store.apply(
        GraphBatch(
            persons=[case("C", onset), person("EARLY"), person("EDGE")],
            events=[
                # Ends one second before the window opens: does not count.
                contact("e-early", "C", "EARLY", window_start - timedelta(hours=1, seconds=1), hours=1),
                # Ends exactly when the window opens: counts, exposed at the opening.
                contact("e-edge", "C", "EDGE", window_start - timedelta(hours=1), hours=1),
            ],
        )
    )
    result = trace_case(store, "C", now=now)
    assert classes(result) == {"EDGE": ContactClass.CLOSE}
    assert result.window_start == window_start
    assert result.close[0].exposed_at == window_start


def test_sampling_time_anchors_an_asymptomatic_case(store, now):
    store.apply(
        GraphBatch(
            persons=[Person(id="A", status="asymptomatic", sampled_at=at(10)), person("P")],
            events=[contact("e", "A", "P", at(6, 1))],
        )
    )
    assert classes(trace_case(store, "A", now=now)) == {"P": ContactClass.CLOSE}


def test_contacts_after_isolation_or_in_the_future_do_not_count(store):
    store.apply(
        GraphBatch(
            persons=[case("C", at(10), isolated_at=at(11, 8)), person("BEFORE"), person("AFTER"), person("AT")],
            events=[
                contact("e1", "C", "BEFORE", at(11, 7)),
                contact("e2", "C", "AFTER", at(11, 9)),
                contact("e3", "C", "AT", at(11, 8)),  # starts the moment the case was isolated
            ],
        )
    )
    assert classes(trace_case(store, "C", now=at(20))) == {"BEFORE": ContactClass.CLOSE}
    # Before the isolation took place, "now" closes the window.
    assert classes(trace_case(store, "C", now=at(11, 7, 30))) == {"BEFORE": ContactClass.CLOSE}
    assert trace_case(store, "C", now=at(11, 6)).contacts == []


def test_secondary_contact_must_follow_the_close_contacts_exposure(store, now):
    store.apply(
        GraphBatch(
            persons=[case("C", at(10)), person("X"), person("BEFORE"), person("AFTER"), person("OVERLAP")],
            events=[
                contact("e-cx", "C", "X", at(8, 12)),
                contact("e-before", "X", "BEFORE", at(8, 9), hours=2),  # ends before X was exposed
                contact("e-overlap", "X", "OVERLAP", at(8, 11), hours=2),  # still going on when X was exposed
                contact("e-after", "X", "AFTER", at(9, 9)),
            ],
        )
    )
    result = trace_case(store, "C", now=now)
    assert classes(result) == {
        "X": ContactClass.CLOSE,
        "OVERLAP": ContactClass.SECONDARY,
        "AFTER": ContactClass.SECONDARY,
    }
    by_person = {c.person_id: c for c in result.contacts}
    assert by_person["OVERLAP"].exposed_at == at(8, 12)  # from the moment X was exposed
    assert by_person["AFTER"].evidence == ["e-cx", "e-after"]
    assert by_person["AFTER"].source_id == "X"


def test_secondary_stops_when_the_close_contact_is_isolated(store, now):
    store.apply(
        GraphBatch(
            persons=[case("C", at(10)), person("X", isolated_at=at(12)), person("Y"), person("Z")],
            events=[
                contact("e1", "C", "X", at(9)),
                contact("e2", "X", "Y", at(11, 20)),
                contact("e3", "X", "Z", at(12, 1)),
            ],
        )
    )
    assert classes(trace_case(store, "C", now=now)) == {"X": ContactClass.CLOSE, "Y": ContactClass.SECONDARY}


def test_each_person_once_with_the_strongest_class_and_earliest_exposure(store, now):
    store.apply(
        GraphBatch(
            persons=[case("C", at(10)), person("X"), person("Y"), person("G")],
            events=[
                contact("e1", "C", "X", at(8)),
                contact("e2", "C", "X", at(7)),  # an earlier meeting of the same pair
                contact("e3", "X", "Y", at(9)),
                contact("e4", "C", "Y", at(9, 5)),  # Y is also a direct close contact: close wins
                contact("e5", "C", "G", at(9), closeness="general"),
                contact("e6", "X", "G", at(9, 6)),  # G is secondary via X, which beats general
            ],
        )
    )
    result = trace_case(store, "C", now=now)
    assert classes(result) == {"X": ContactClass.CLOSE, "Y": ContactClass.CLOSE, "G": ContactClass.SECONDARY}
    x = next(c for c in result.contacts if c.person_id == "X")
    assert (x.exposed_at, x.evidence, x.exposure_count) == (at(7), ["e2"], 2)
    assert [c.person_id for c in result.contacts] == ["X", "Y", "G"]  # class, then exposure time


def test_policy_settings_change_classes(store, now):
    store.apply(
        GraphBatch(
            persons=[case("C", at(10)), person("SHORT"), person("BUS"), person("Y")],
            events=[
                contact("e1", "C", "SHORT", at(9), hours=0.1),
                contact("e2", "C", "BUS", at(9), kind=ContactKind.VEHICLE),
                contact("e3", "BUS", "Y", at(9, 3)),
            ],
        )
    )
    default = classes(trace_case(store, "C", now=now, persist=False))
    assert default == {"SHORT": ContactClass.CLOSE, "BUS": ContactClass.CLOSE, "Y": ContactClass.SECONDARY}
    strict = TracingPolicy(
        min_close_duration=timedelta(minutes=15),
        close_kinds=frozenset({ContactKind.HOUSEHOLD, ContactKind.MEAL}),
        trace_secondary=False,
    )
    assert classes(trace_case(store, "C", policy=strict, now=now, persist=False)) == {
        "SHORT": ContactClass.GENERAL,
        "BUS": ContactClass.GENERAL,
    }
    two_days = TracingPolicy(look_back=timedelta(days=2))
    store.apply(GraphBatch(persons=[person("OLD")], events=[contact("e4", "C", "OLD", at(7))]))
    assert "OLD" in classes(trace_case(store, "C", now=now, persist=False))
    assert "OLD" not in classes(trace_case(store, "C", policy=two_days, now=now, persist=False))


def test_covisits_are_general_contacts(store, now):
    store.apply(
        GraphBatch(
            persons=[case("C", at(10)), person("SAME"), person("LATER")],
            visits=[
                Visit(id="v-c", person_id="C", place_id="MALL", start=at(9, 10), end=at(9, 12)),
                Visit(id="v-same", person_id="SAME", place_id="MALL", start=at(9, 11), end=at(9, 13)),
                Visit(id="v-later", person_id="LATER", place_id="MALL", start=at(9, 13), end=at(9, 14)),
            ],
        )
    )
    result = trace_case(store, "C", now=now)
    assert classes(result) == {"SAME": ContactClass.GENERAL}
    assert result.general[0].evidence == ["covisit:v-c+v-same"]
    assert result.general[0].exposed_at == at(9, 11)


def test_derived_relations_are_stored_and_rederived_when_onset_changes(store, now):
    store.apply(
        GraphBatch(
            persons=[case("C", at(10)), person("X"), person("Y")],
            events=[contact("e1", "C", "X", at(7)), contact("e2", "X", "Y", at(8))],
        )
    )
    trace_case(store, "C", now=now)
    stored = {c.person_id: c.contact_class for c in store.derived_for_case("C")}
    assert stored == {"X": ContactClass.CLOSE, "Y": ContactClass.SECONDARY}

    # Onset corrected to three days later: the window opens on the 9th, after both meetings.
    apply_and_rederive(store, GraphBatch(persons=[case("C", at(13))]), now=now)
    assert store.derived_for_case("C") == []

    # And back: onset on the 11th opens the window on the 7th again.
    apply_and_rederive(store, GraphBatch(persons=[case("C", at(11))]), now=now)
    assert {c.person_id for c in store.derived_for_case("C")} == {"X", "Y"}


def test_new_contact_of_a_close_contact_rederives_the_case(store, now):
    store.apply(
        GraphBatch(persons=[case("C", at(10)), person("X")], events=[contact("e1", "C", "X", at(9))])
    )
    trace_case(store, "C", now=now)
    changed = apply_and_rederive(
        store, GraphBatch(persons=[person("NEW")], events=[contact("e2", "X", "NEW", at(10))]), now=now
    )
    assert changed == ["C"]
    assert {c.person_id: c.contact_class for c in store.derived_for_case("C")}["NEW"] is ContactClass.SECONDARY
    # Isolating X before that meeting removes the secondary contact again.
    apply_and_rederive(store, GraphBatch(persons=[person("X", isolated_at=at(9, 12))]), now=now)
    assert {c.person_id for c in store.derived_for_case("C")} == {"X"}


def test_status_change_removes_derived_relations(store, now):
    store.apply(GraphBatch(persons=[case("C", at(10)), person("X")], events=[contact("e1", "C", "X", at(9))]))
    trace_case(store, "C", now=now)
    apply_and_rederive(store, GraphBatch(persons=[person("C", onset_at=at(10))]), now=now)  # excluded: no longer a case
    assert store.derived_for_case("C") == []


def test_errors_for_unknown_non_case_and_undated_cases(store, now):
    store.apply(GraphBatch(persons=[person("P"), case("U", None)]))
    with pytest.raises(CaseNotFound, match="not in the graph"):
        trace_case(store, "nobody", now=now)
    with pytest.raises(CaseNotFound, match="not a case"):
        trace_case(store, "P", now=now)
    with pytest.raises(NoInfectiousWindow):
        trace_case(store, "U", now=now)
