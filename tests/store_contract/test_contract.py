"""The store contract: every backend must behave the same for every verb of the port."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from graph_models import (
    ContactClass,
    ContactEvent,
    Person,
    PersonStatus,
    Place,
    TracedContact,
    TransmissionLink,
    Visit,
)
from tests.builders import at, case, contact, person
from tracing.store import GraphBatch
from tracing.store.codec import to_epoch_us
from tracing.store.port import ContactSpan


def _sample_batch() -> GraphBatch:
    return GraphBatch(
        persons=[
            case("C1", onset=at(10, 8), name="张三", id_number="110101199001011234", phone="13800138000",
                 household_id="H1", address="朝阳区 1 号", lat=39.9, lon=116.4, region="110105",
                 sampled_at=at(10, 9), reported_at=at(11, 9, 30), isolated_at=at(11, 12),
                 attributes={"age": 34, "sex": "m", "note": None}),
            person("P1", household_id="H1"),
            person("P2", status="suspected"),
        ],
        places=[Place(id="L1", name="Market 市场", kind="market", lat=39.91, lon=116.41, region="110105")],
        events=[
            contact("E1", "C1", "P1", at(9, 18), kind="household"),
            contact("E2", "P2", "C1", at(8, 12), hours=0.5, kind="meal", closeness="general", place_id="L1"),
            contact("E3", "P1", "P2", at(3, 12)),
        ],
        visits=[Visit(id="V1", person_id="C1", place_id="L1", start=at(9, 10), end=at(9, 11))],
        links=[TransmissionLink(infector="C1", infectee="P1", exposure="family", exposed_at=at(9, 18))],
    )


def test_round_trip_keeps_every_field(store):
    batch = _sample_batch()
    store.apply(batch)
    got = store.get_persons(["C1", "P1", "P2", "nobody"])
    assert set(got) == {"C1", "P1", "P2"}
    assert got["C1"] == batch.persons[0]
    assert got["C1"].onset_at.tzinfo is not None
    assert store.get_places(["L1"])["L1"] == batch.places[0]
    assert store.get_events(["E2"])["E2"] == batch.events[1]
    assert store.visits_of(["C1"]) == batch.visits
    assert store.links_from(["C1"]) == batch.links
    counts = store.counts()
    assert (counts.persons, counts.places, counts.events, counts.visits, counts.links) == (3, 1, 3, 1, 1)


def test_isolation_times(store):
    store.apply(_sample_batch())
    store.apply(GraphBatch(events=[contact("E9", "ghost", "P1", at(5))]))  # a stub endpoint is not a person
    assert store.isolation_times(["C1", "P1", "ghost", "nobody"]) == {"C1": at(11, 12), "P1": None}
    assert store.isolation_times([]) == {}


def test_upsert_by_key_is_idempotent_and_updates(store):
    store.apply(_sample_batch())
    store.apply(_sample_batch())
    assert store.counts().events == 3
    store.apply(GraphBatch(persons=[case("C1", onset=at(12))], events=[contact("E1", "C1", "P1", at(9, 20))]))
    assert store.get_persons(["C1"])["C1"].onset_at == at(12)
    assert store.get_persons(["C1"])["C1"].name is None  # an upsert replaces the whole record
    assert store.get_events(["E1"])["E1"].start == at(9, 20)
    assert store.counts().persons == 3


def test_failed_batch_writes_nothing(store):
    good = _sample_batch()
    # A record without its key fails inside the write, after earlier records of the batch went in.
    broken = ContactEvent.model_construct(
        id="E9", a=None, b="P1", start=at(9), end=at(9, 1), kind="other", place_id=None, source="interview",
        closeness="close",
    )
    good.events.append(broken)
    with pytest.raises(Exception):
        store.apply(good)
    counts = store.counts()
    assert (counts.persons, counts.places, counts.events, counts.visits, counts.links) == (0, 0, 0, 0, 0)


def test_events_touching_filters_by_overlap_inclusive(store):
    store.apply(_sample_batch())
    # E1 runs 9th 18:00-19:00: a window ending exactly at its start, or starting exactly at its end, still overlaps.
    assert [e.id for e in store.events_touching(["C1"], start=at(9, 19), end=at(30))] == ["E1"]
    assert [e.id for e in store.events_touching(["C1"], start=at(1), end=at(9, 18))] == ["E2", "E1"]
    assert [e.id for e in store.events_touching(["C1"], start=at(9, 19, 0, 1), end=at(30))] == []
    assert [e.id for e in store.events_touching(["P1", "P2"])] == ["E3", "E2", "E1"]
    assert store.events_touching(["nobody"]) == []


def _as_span(event: ContactEvent) -> ContactSpan:
    return ContactSpan(event.id, event.a, event.b, event.start, event.end, event.kind.value, event.closeness.value)


@pytest.mark.parametrize(
    ("ids", "start", "end"),
    [
        (["C1"], at(9, 19), at(30)),  # the window starts exactly where E1 ends
        (["C1"], at(1), at(9, 18)),  # ... and ends exactly where E1 starts
        (["C1"], at(9, 19, 0, 1), at(30)),  # one second too late: nothing
        (["P1", "P2"], None, None),  # E2 joins P1 and P2: read once
        (["C1", "P1", "P2", "ghost"], at(8), None),
        (["nobody"], None, None),
    ],
)
def test_contact_spans_select_what_events_touching_selects(store, ids, start, end):
    store.apply(_sample_batch())
    spans = store.contact_spans(ids, start=start, end=end)
    assert all(isinstance(span, ContactSpan) for span in spans)
    assert sorted(spans) == sorted(_as_span(e) for e in store.events_touching(ids, start=start, end=end))
    assert len({span.id for span in spans}) == len(spans)


def test_contact_spans_filtered_by_closeness(store):
    store.apply(GraphBatch(events=[
        ContactEvent(id="E1", a="A", b="B", start=at(3), end=at(3, 1), kind="household", closeness="close"),
        ContactEvent(id="E2", a="B", b="C", start=at(3), end=at(3, 1), kind="venue", closeness="general"),
        ContactEvent(id="E3", a="C", b="A", start=at(4), end=at(4, 1), kind="meal", closeness="close"),
    ]))
    assert sorted(s.id for s in store.contact_spans(["A", "B", "C"])) == ["E1", "E2", "E3"]
    assert sorted(s.id for s in store.contact_spans(["A", "B", "C"], closeness="close")) == ["E1", "E3"]
    assert [s.id for s in store.contact_spans(["B"], closeness="general")] == ["E2"]
    assert [s.id for s in store.contact_spans(["B"], start=at(3, 2), closeness="close")] == []
    assert [s.id for s in store.contact_spans(["C"], start=at(3, 2), closeness="close")] == ["E3"]


def test_contact_spans_keep_times_kind_and_closeness(store):
    event = ContactEvent(
        id="E1", a="A", b="B", start=at(3, 8, 15, 7), end=at(3, 9), kind="vehicle", closeness="general",
    )
    store.apply(GraphBatch(events=[event]))
    (span,) = store.contact_spans(["B"])
    assert span == ContactSpan("E1", "A", "B", at(3, 8, 15, 7), at(3, 9), "vehicle", "general")
    assert span.start.tzinfo is not None and span.start.utcoffset().total_seconds() == 0


def test_events_may_reference_persons_not_in_store(store):
    store.apply(GraphBatch(events=[contact("E1", "ghost-a", "ghost-b", at(5))]))
    assert [e.id for e in store.events_touching(["ghost-a"])] == ["E1"]
    assert store.get_persons(["ghost-a", "ghost-b"]) == {}
    assert store.counts().persons == 0


def test_multi_edges_between_the_same_pair(store):
    store.apply(GraphBatch(events=[contact(f"E{i}", "A", "B", at(1 + i)) for i in range(5)]))
    assert [e.id for e in store.events_touching(["B"], start=at(3), end=at(4, 0, 30))] == ["E2", "E3"]


def test_visits_by_person_and_place(store):
    store.apply(
        GraphBatch(
            visits=[
                Visit(id="V1", person_id="A", place_id="L1", start=at(2, 9), end=at(2, 10)),
                Visit(id="V2", person_id="B", place_id="L1", start=at(2, 9, 30), end=at(2, 11)),
                Visit(id="V3", person_id="B", place_id="L2", start=at(5), end=at(5, 1)),
            ]
        )
    )
    assert [v.id for v in store.visits_at(["L1"], start=at(2, 10), end=at(2, 10))] == ["V1", "V2"]
    assert [v.id for v in store.visits_of(["B"], start=at(3), end=None)] == ["V3"]


def test_links_both_directions_and_iteration(store):
    links = [
        TransmissionLink(infector="A", infectee="B"),
        TransmissionLink(infector="A", infectee="C", exposure="funeral"),
        TransmissionLink(infector="C", infectee="D"),
    ]
    store.apply(GraphBatch(links=links))
    assert [(k.infector, k.infectee) for k in store.links_from(["A"])] == [("A", "B"), ("A", "C")]
    assert [(k.infector, k.infectee) for k in store.links_to(["D", "B"])] == [("A", "B"), ("C", "D")]
    assert sorted((k.infector, k.infectee) for k in store.iter_links()) == [("A", "B"), ("A", "C"), ("C", "D")]


def test_persons_with_status_and_iteration(store):
    store.apply(_sample_batch())
    assert [p.id for p in store.persons_with_status([PersonStatus.CONFIRMED, PersonStatus.ASYMPTOMATIC])] == ["C1"]
    assert sorted(p.id for p in store.iter_persons()) == ["C1", "P1", "P2"]
    assert sorted(e.id for e in store.iter_events()) == ["E1", "E2", "E3"]
    assert [p.id for p in store.iter_places()] == ["L1"]
    assert [v.id for v in store.iter_visits()] == ["V1"]


def test_delete_events(store):
    store.apply(_sample_batch())
    assert store.delete_events(["E1", "E3", "missing"]) == 2
    assert sorted(e.id for e in store.iter_events()) == ["E2"]


def test_derived_relations_replace_and_reverse_lookup(store):
    derived_at = datetime(2022, 4, 20, tzinfo=timezone.utc)
    first = [
        TracedContact(case_id="C1", person_id="P1", contact_class=ContactClass.CLOSE, source_id="C1",
                      exposed_at=at(9, 18), evidence=["E1"], exposure_count=2),
        TracedContact(case_id="C1", person_id="P2", contact_class=ContactClass.SECONDARY, source_id="P1",
                      exposed_at=at(9, 20), evidence=["E1", "E3"]),
    ]
    store.replace_derived("C1", first, derived_at=derived_at)
    assert store.derived_for_case("C1") == first
    assert store.cases_deriving(["P2"]) == {"C1"}
    assert store.cases_deriving(["P1"]) == {"C1"}  # as target and as the source of a secondary contact
    store.replace_derived("C1", first[:1], derived_at=derived_at + timedelta(hours=1))
    assert store.derived_for_case("C1") == first[:1]
    assert store.cases_deriving(["P2"]) == set()
    assert [(c.person_id, when) for c, when in store.iter_derived()] == [("P1", derived_at + timedelta(hours=1))]
    store.replace_derived("C1", [], derived_at=derived_at)
    assert store.derived_for_case("C1") == [] and store.counts().derived == 0


def test_derived_for_many_cases_matches_one_by_one(store):
    derived_at = datetime(2022, 4, 20, tzinfo=timezone.utc)
    for case_id, people in (("C1", ["P1", "P2"]), ("C2", ["P3"])):
        store.replace_derived(
            case_id,
            [
                TracedContact(case_id=case_id, person_id=p, contact_class=cls, source_id=case_id,
                              exposed_at=at(9, 20 - i), evidence=[f"E-{case_id}-{p}"])
                for i, (p, cls) in enumerate(zip(people, [ContactClass.CLOSE, ContactClass.GENERAL]))
            ],
            derived_at=derived_at,
        )
    batched = store.derived_for_cases(["C2", "C1", "nobody", "C1"])
    assert list(batched) == ["C2", "C1", "nobody"]
    assert batched["C1"] == store.derived_for_case("C1") and [c.person_id for c in batched["C1"]] == ["P2", "P1"]
    assert batched["C2"] == store.derived_for_case("C2") and batched["nobody"] == []
    refs = store.contact_refs_for_cases(["C2", "C1", "nobody", "C1"])
    assert list(refs) == ["C2", "C1", "nobody"]
    assert {case_id: [(c.person_id, c.contact_class) for c in contacts] for case_id, contacts in refs.items()} == {
        "C2": [("P3", ContactClass.CLOSE)], "C1": [("P2", ContactClass.GENERAL), ("P1", ContactClass.CLOSE)], "nobody": [],
    }


def test_large_id_lists_are_chunked(store):
    ids = [f"P{i:05d}" for i in range(2500)]
    store.apply(GraphBatch(persons=[Person(id=i) for i in ids], events=[contact(f"E{i}", i, "hub", at(2)) for i in ids]))
    assert len(store.get_persons(ids)) == 2500
    assert len(store.events_touching(ids[:1500])) == 1500
    assert len(store.contact_spans([*ids[:1500], "hub"])) == 2500


def test_read_transaction_offers_the_same_reads(store):
    store.apply(_sample_batch())

    def read_all(reader):
        return (
            reader.get_persons(["C1", "P1"]),
            reader.isolation_times(["C1", "P1"]),
            sorted(reader.contact_spans(["C1"], start=at(1))),
            [e.id for e in reader.events_touching(["P1", "P2"])],
            reader.derived_for_cases(["C1"]),
        )

    inside = store.read_transaction(read_all)
    assert inside == read_all(store)
    assert inside[0]["C1"].id == "C1" and len(inside[2]) == 2


def test_read_transaction_passes_errors_through(store):
    class Stop(Exception):
        pass

    def failing(reader):
        reader.get_persons(["C1"])
        raise Stop

    with pytest.raises(Stop):
        store.read_transaction(failing)


def _listing_batch() -> GraphBatch:
    regions = {
        "A1": "11", "A2": "1101", "A3": "110105", "A4": "12", "A5": "111",
        "B1": "KR/Seoul", "B2": "KR/Seoul/Gangnam-gu", "B3": "KR/Seoulite", "B4": "kr/seoul/x", "B5": None,
    }
    persons = []
    for i, (pid, region) in enumerate(sorted(regions.items())):
        status = PersonStatus.CONFIRMED if i % 3 == 0 else PersonStatus.NONE
        persons.append(person(pid, region=region, status=status, reported_at=at(1 + i) if i % 2 == 0 else None))
    # An event endpoint that is not a person record must never be listed.
    return GraphBatch(persons=persons, events=[contact("E1", "A1", "ghost", at(3))])


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (None, ["A1", "A2", "A3", "A4", "A5", "B1", "B2", "B3", "B4", "B5"]),
        ("11", ["A1", "A2", "A3", "A5"]),  # digit codes nest by prefix
        ("1101", ["A2", "A3"]),
        ("KR/Seoul", ["B1", "B2"]),  # paths nest by whole segments, case-sensitive
        ("KR/Seoul/", ["B1", "B2"]),
        ("KR", ["B1", "B2", "B3"]),
        ("13", []),
    ],
)
def test_find_persons_by_region_subtree(store, region, expected):
    store.apply(_listing_batch())
    assert [p.id for p in store.find_persons(region=region, limit=50)] == expected


def test_find_persons_filters_combine_and_page_by_id(store):
    store.apply(_listing_batch())
    everyone = store.find_persons(limit=50)
    confirmed = [p.id for p in everyone if p.status is PersonStatus.CONFIRMED]
    assert confirmed and [p.id for p in store.find_persons(statuses=[PersonStatus.CONFIRMED])] == confirmed
    assert store.find_persons(statuses=[]) == []
    reported = [p.id for p in everyone if p.reported_at is not None and at(3) <= p.reported_at <= at(7)]
    assert reported and [p.id for p in store.find_persons(reported_since=at(3), reported_until=at(7))] == reported
    both = [p.id for p in everyone if p.status is PersonStatus.CONFIRMED and p.region and p.region.startswith("KR/")]
    assert [p.id for p in store.find_persons(region="KR", statuses=["confirmed"])] == both

    pages, after = [], None
    while page := store.find_persons(after=after, limit=3):
        pages.append([p.id for p in page])
        after = page[-1].id
    assert pages == [["A1", "A2", "A3"], ["A4", "A5", "B1"], ["B2", "B3", "B4"], ["B5"]]
    assert store.find_persons(region="11", after="A2", limit=1)[0].id == "A3"
    assert everyone[0] == store.get_persons(["A1"])["A1"]


def test_person_fields_are_what_get_persons_holds(store):
    store.apply(_sample_batch())
    store.apply(GraphBatch(events=[contact("E9", "ghost", "P1", at(5))]))  # a stub endpoint is not a person
    fields = ["name", "phone", "lat", "lon", "onset_at", "isolated_at", "status", "attr:age", "attr:note",
              "attr:absent", "household_id", "address"]
    got = store.person_fields(["C1", "P1", "ghost", "nobody", "C1"], fields)
    assert set(got) == {"C1", "P1"}
    assert got["C1"] == ("张三", "13800138000", 39.9, 116.4, to_epoch_us(at(10, 8)), to_epoch_us(at(11, 12)),
                         "confirmed", 34, None, None, "H1", "朝阳区 1 号")
    assert got["P1"] == (None, None, None, None, None, None, "none", None, None, None, "H1", None)
    persons = store.get_persons(["C1", "P1"])
    for pid, values in got.items():  # the same values as the model, times in µs
        person = persons[pid]
        expected = [
            person.attributes.get(name[5:]) if name.startswith("attr:")
            else to_epoch_us(getattr(person, name)) if isinstance(getattr(person, name), datetime)
            else getattr(person, name)
            for name in fields
        ]
        assert list(values) == expected
    assert store.person_fields(["C1"], ["address"]) == {"C1": ("朝阳区 1 号",)}
    assert store.person_fields(["C1"], []) == {"C1": ()}
    assert store.person_fields([], ["name"]) == {}
    with pytest.raises(ValueError):
        store.person_fields(["C1"], ["attributes"])
    with pytest.raises(ValueError):
        store.person_fields(["C1"], ["name) FROM x --"])


def test_person_fields_of_many_persons(store):
    ids = [f"P{i:05d}" for i in range(2500)]
    store.apply(GraphBatch(persons=[Person(id=i, phone=i, attributes={"workplace": f"w{i}"}) for i in ids]))
    got = store.person_fields(ids, ["attr:workplace", "phone", "name"])
    assert len(got) == 2500 and got["P01234"] == ("wP01234", "P01234", None)
