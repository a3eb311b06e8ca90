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


def test_lean_check_is_the_model_check():
    groups = (("name",), ("id_number", "phone"), ("address", "location"), ("attr:workplace", "household_id"))
    checks = person_checks(groups)
    people = [
        Person(id="A"),
        Person(id="B", name="", phone="1", lat=1.0, lon=2.0, attributes={"workplace": ""}),
        Person(id="C", name="n", id_number="x", address="a", attributes={"workplace": False}),
        Person(id="D", name="n", phone="", address="", lat=0.0, lon=0.0, household_id="H"),
    ]
    for person in people:
        assert missing_in(person_values(person, checks.fields), checks) == missing_groups(person, groups)
    assert missing_in(None, checks) == missing_groups(None, groups) == ["person_record"]
    assert person_checks(DeadlinePolicy().core_fields).fields == ("name", "id_number", "phone", "address", "lat", "lon")
