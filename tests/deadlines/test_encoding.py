"""The sweep's hand-spelled encodings match the models' own, so stored reasons compare byte for byte."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import pytest

from graph_models import Person
from graph_models.deadlines import DeadlinePolicy, Gap, MilestoneReason
from tracing.deadlines.engine import missing_in, person_checks, reason_json
from tracing.deadlines.rows import us

TRICKY = ['张三 "quoted"', "back\\slash", "line\nbreak\ttab\x00\x1f\x7f", "😀 emoji", "\u2028", "", "/<>&"]


@pytest.mark.parametrize("text", TRICKY)
def test_reason_json_is_the_model_encoding(text):
    gaps = [(None, "investigation", [text]), (text, "close", ["name", text]), ("P1", text, [])]
    for summary, gap_list in ((text, gaps), (text, []), ("all 2 contacts complete", [])):
        model = MilestoneReason(summary=summary, gaps=[Gap(person_id=p, role=r, missing=m) for p, r, m in gap_list])
        assert reason_json(summary, gap_list) == model.model_dump_json()


def person_values(person: Person, fields: tuple[str, ...]) -> tuple:
    """``fields`` of a model as ``person_fields`` returns them (times as µs, enums as values)."""
    values = []
    for name in fields:
        value = person.attributes.get(name[5:]) if name.startswith("attr:") else getattr(person, name)
        values.append(us(value) if isinstance(value, datetime) else value.value if isinstance(value, Enum) else value)
    return tuple(values)


def missing_groups(person: Person | None, groups: tuple[tuple[str, ...], ...]) -> list[str]:
    """The requirement read plainly off a model: a group is met when one of its fields is neither None nor ""."""
    if person is None:
        return ["person_record"]

    def present(name: str) -> bool:
        if name == "location":
            return person.lat is not None and person.lon is not None
        value = person.attributes.get(name[5:]) if name.startswith("attr:") else getattr(person, name)
        return value is not None and value != ""

    return ["|".join(group) for group in groups if not any(present(name) for name in group)]


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
