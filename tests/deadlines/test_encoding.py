"""The sweep's hand-spelled encodings match the models' own, so stored reasons compare byte for byte."""

from __future__ import annotations

import pytest

from graph_models import Person
from graph_models.deadlines import DeadlinePolicy, Gap, MilestoneReason
from tracing.deadlines.engine import missing_groups, missing_in, person_checks, person_values, reason_json

TRICKY = ['张三 "quoted"', "back\\slash", "line\nbreak\ttab\x00\x1f\x7f", "😀 emoji", "\u2028", "", "/<>&"]


@pytest.mark.parametrize("text", TRICKY)
def test_reason_json_is_the_model_encoding(text):
    gaps = [(None, "investigation", [text]), (text, "close", ["name", text]), ("P1", text, [])]
    for summary, gap_list in ((text, gaps), (text, []), ("all 2 contacts complete", [])):
        model = MilestoneReason(summary=summary, gaps=[Gap(person_id=p, role=r, missing=m) for p, r, m in gap_list])
        assert reason_json(summary, gap_list) == model.model_dump_json()


def test_lean_checks_are_the_model_checks():
    groups = (("name",), ("id_number", "phone"), ("address", "location"), ("attr:workplace", "household_id"))
    policy = DeadlinePolicy(core_fields=groups, family_fields=(("household_id", "attr:family"),))
    checks = person_checks(policy)
    people = [
        Person(id="A"),
        Person(id="B", name="", phone="1", lat=1.0, lon=2.0, attributes={"workplace": "", "family": "F"}),
        Person(id="C", name="n", id_number="x", address="a", attributes={"workplace": False}),
        Person(id="D", name="n", phone="", address="", lat=0.0, lon=0.0, household_id="H"),
    ]
    for person in people:
        values = person_values(person, checks.fields)
        assert missing_in(values, checks.core) == missing_groups(person, groups)
        assert missing_in(values, checks.residence) == missing_groups(person, policy.residence_fields)
        assert missing_in(values, checks.family) == missing_groups(person, policy.family_fields)
    assert missing_in(None, checks.core) == missing_groups(None, groups) == ["person_record"]
    default = person_checks(DeadlinePolicy())
    assert default.fields[:6] == ("name", "id_number", "phone", "address", "lat", "lon")
    assert {"household_id", "attr:workplace", "onset_at", "sampled_at", "isolated_at"} <= set(default.fields)
