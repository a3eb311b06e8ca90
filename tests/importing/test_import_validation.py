"""Validation: bad rows are reported with file, line and a readable reason, and nothing is written."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tracing.errors import ImportRejected
from tracing.importing import MappingError, adhoc_mapping, import_files
from tracing.importing.mapping import parse_mapping

from .helpers import local_day, present, rows_with_lines, zero_counts


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _errors(exc: ImportRejected) -> dict[tuple[str, int], str]:
    return {(p.file, p.line): p.reason for p in exc.problems if p.severity == "error"}


# --- the raw ebola line list -------------------------------------------------------------------


def _onset_not_after_infection(datasets) -> dict[int, dict[str, str]]:
    raw = rows_with_lines(datasets / "ebola_sim_2014" / "ebola_sim_linelist.csv")
    return {
        line: r
        for line, r in raw
        if present(r["date_of_infection"]) and r["date_of_onset"] <= r["date_of_infection"]  # ISO dates sort as text
    }


def test_raw_ebola_line_list_is_rejected_with_exactly_the_bad_rows(datasets, sqlite_store):
    bad = _onset_not_after_infection(datasets)
    assert len(bad) == 59  # as documented in the dataset's README

    with pytest.raises(ImportRejected) as caught:
        import_files(sqlite_store, "ebola_sim_2014_raw", datasets / "ebola_sim_2014", progress=False)

    errors = _errors(caught.value)
    assert set(errors) == {("ebola_sim_linelist.csv", line) for line in bad}
    for (_, line), reason in errors.items():
        row = bad[line]
        assert f"date_of_onset {row['date_of_onset']}" in reason
        assert f"date_of_infection {row['date_of_infection']}" in reason
    assert "ebola_sim_linelist.csv:" in str(caught.value) and "59 bad row(s)" in str(caught.value)
    assert sqlite_store.counts() == zero_counts()


def test_raw_ebola_with_skip_invalid_writes_the_rest_and_matches_the_clean_import(datasets, fresh_store):
    bad = _onset_not_after_infection(datasets)
    raw_store, clean_store = fresh_store(), fresh_store()

    report = import_files(
        raw_store, "ebola_sim_2014_raw", datasets / "ebola_sim_2014", progress=False, skip_invalid=True
    )
    import_files(clean_store, "ebola_sim_2014", datasets / "ebola_sim_2014", progress=False)

    assert {p.line for p in report.errors} == set(bad)
    assert report.files[0].rows_rejected == 59 and report.files[0].written["persons"] == 5888 - 59
    # The clean file is the raw one minus those rows, with the hospital names fixed: same graph.
    assert raw_store.counts() == clean_store.counts()
    assert {p.id: p for p in raw_store.iter_persons()} == {p.id: p for p in clean_store.iter_persons()}
    assert sorted(map(repr, raw_store.iter_events())) == sorted(map(repr, clean_store.iter_events()))
    assert sorted(map(repr, raw_store.iter_links())) == sorted(map(repr, clean_store.iter_links()))
    rejected_ids = {row["case_id"] for row in bad.values()}
    assert all(p.attributes.get("placeholder") for p in raw_store.get_persons(rejected_ids).values())


# --- a user's malformed files ------------------------------------------------------------------


def _user_mapping(**overrides) -> dict:
    mapping = {
        "name": "user",
        "timezone": "Asia/Shanghai",
        "files": [
            {"name": "persons", "path": "persons.csv",
             "records": [{"type": "person", "match_columns": True, "keep_other_columns": True}]},
            {"name": "contacts", "path": "contacts.csv", "records": [{"type": "event", "match_columns": True}]},
        ],
    }
    mapping.update(overrides)
    return mapping


def test_malformed_user_csv_gives_row_level_reasons_and_writes_nothing(tmp_path, sqlite_store):
    _write(tmp_path / "persons.csv", (
        "id,status,onset_at,lat,lon,age\n"
        "P1,confirmed,2022-03-01,31.2,121.4,40\n"      # 2 fine
        ",confirmed,2022-03-01,,,33\n"                 # 3 no id
        "P3,confirmed,yesterday,,,12\n"                # 4 bad date
        "P4,none,,31.2,,50\n"                          # 5 lat without lon
        "P5,contagious,,,,7\n"                         # 6 unknown status
    ))
    _write(tmp_path / "contacts.csv", (
        "a,b,start,end,kind,note\n"
        "P1,P4,2022-03-01T10:00,2022-03-01T11:00,meal,fine\n"          # 2
        "P1,P5,2022-13-01,2022-03-01T11:00,meal,bad month\n"           # 3
        'P4,P5,2022-03-02,2022-03-01,meal,"a note\n'                  # 4-5: quoted line break
        'over two lines"\n'
        "P1,P5,2022-03-02T08:00,2022-03-02T09:00,sauna,unknown kind\n"  # 6
        "P1,P1,2022-03-02T08:00,2022-03-02T09:00,meal,self\n"           # 7 self-loop: warning only
        "P1,P5,2022-03-03T08:00,2022-03-03T09:00,meal\n"                # 8 too few fields
    ))

    with pytest.raises(ImportRejected) as caught:
        import_files(sqlite_store, parse_mapping(_user_mapping()), tmp_path, progress=False)

    errors = _errors(caught.value)
    assert set(errors) == {
        ("persons.csv", 3), ("persons.csv", 4), ("persons.csv", 5), ("persons.csv", 6),
        ("contacts.csv", 3), ("contacts.csv", 4), ("contacts.csv", 6), ("contacts.csv", 8),
    }
    assert errors[("persons.csv", 3)] == "person: missing id"
    assert errors[("persons.csv", 4)].startswith("onset_at: 'yesterday' is not a date")
    assert "lat and lon must be given together" in errors[("persons.csv", 5)]
    assert errors[("persons.csv", 6)].startswith("status: Input should be") and "'contagious'" in errors[("persons.csv", 6)]
    assert errors[("contacts.csv", 3)].startswith("start: '2022-13-01' is not a date")
    assert errors[("contacts.csv", 4)] == "end 2022-03-01 is before start 2022-03-02"
    assert errors[("contacts.csv", 6)].startswith("kind: Input should be 'household'")
    assert errors[("contacts.csv", 8)] == "expected 6 fields (as in the header), found 5"
    warnings = [p for p in caught.value.problems if p.severity == "warning"]
    assert [(p.file, p.line) for p in warnings] == [("contacts.csv", 7)] and "self-loop" in warnings[0].reason
    assert sqlite_store.counts() == zero_counts()


def test_missing_column_is_reported_once_at_the_header(tmp_path, sqlite_store):
    _write(tmp_path / "cases.csv", "case,onset\nA,2022-03-01\nB,2022-03-02\n")
    mapping = parse_mapping({"name": "m", "files": [
        {"path": "cases.csv", "records": [{"type": "person", "fields": {"id": "case_id", "onset_at": "onset"}}]}]})

    with pytest.raises(ImportRejected) as caught:
        import_files(sqlite_store, mapping, tmp_path, progress=False)

    assert [(p.file, p.line) for p in caught.value.problems] == [("cases.csv", 1)]
    assert "'case_id' not in the header" in caught.value.problems[0].reason


def test_conflicting_duplicate_ids_are_errors_identical_ones_are_not(tmp_path, sqlite_store):
    _write(tmp_path / "persons.csv", "id,status\nA,confirmed\nB,none\nA,confirmed\nB,confirmed\n")
    with pytest.raises(ImportRejected) as caught:
        import_files(sqlite_store, adhoc_mapping(tmp_path / "persons.csv", "persons"), tmp_path / "persons.csv",
                     progress=False)
    (problem,) = caught.value.problems
    assert problem.line == 5 and "also defined at" in problem.reason and ":3 with different status" in problem.reason


def test_dangling_references_can_be_errors(tmp_path, sqlite_store):
    _write(tmp_path / "links.csv", "infector,infectee\nA,B\n")
    mapping = parse_mapping({"name": "m", "missing_persons": "error", "files": [
        {"path": "links.csv", "records": [{"type": "link", "match_columns": True}]}]})
    with pytest.raises(ImportRejected) as caught:
        import_files(sqlite_store, mapping, tmp_path, progress=False)
    assert {p.reason for p in caught.value.problems} == {
        "person A is not defined in this import or the store", "person B is not defined in this import or the store"}

    # Persons already in the store are fine, and are not replaced by placeholders.
    _write(tmp_path / "persons.csv", "id,status\nA,confirmed\nB,confirmed\n")
    import_files(sqlite_store, adhoc_mapping(tmp_path / "persons.csv", "persons"), tmp_path / "persons.csv", progress=False)
    report = import_files(sqlite_store, mapping, tmp_path, progress=False)
    assert not report.problems and sqlite_store.counts().links == 1
    assert all(p.is_case for p in sqlite_store.get_persons(["A", "B"]).values())


# --- dates -------------------------------------------------------------------------------------


def test_dates_are_local_days_and_interval_ends_close_the_day(tmp_path, sqlite_store):
    _write(tmp_path / "visits.csv", (
        "person_id,place_id,start,end\n"
        "P1,market,2022-03-01,2022-03-01\n"
        "P2,market,01/03/2022,02/03/2022\n"
        "P3,market,2022-03-01T01:30:00+00:00,2022-03-01 10:00\n"
    ))
    mapping = adhoc_mapping(tmp_path / "visits.csv", "visits", timezone="Asia/Shanghai", date_formats=("%d/%m/%Y",))
    report = import_files(sqlite_store, mapping, tmp_path / "visits.csv", progress=False)

    visits = {v.person_id: v for v in sqlite_store.iter_visits()}
    assert visits["P1"].start == datetime(2022, 2, 28, 16, 0, tzinfo=timezone.utc)
    assert visits["P1"].end == local_day("2022-03-01", "Asia/Shanghai", end=True)
    assert visits["P2"].end == local_day("2022-03-02", "Asia/Shanghai", end=True)
    assert visits["P3"].start == datetime(2022, 3, 1, 1, 30, tzinfo=timezone.utc)  # explicit offset kept
    assert visits["P3"].end == datetime(2022, 3, 1, 2, 0, tzinfo=timezone.utc)  # naive = local
    assert report.placeholders == {"persons": 3, "places": 1}


# --- JSON and JSON Lines ----------------------------------------------------------------------


def test_json_array_and_json_lines(tmp_path, sqlite_store):
    persons = [
        {"id": "P1", "status": "confirmed", "onset_at": "2022-03-01", "lat": 31.23, "lon": 121.47, "age": 40},
        {"id": "P2", "status": "none", "household_id": "H1", "vaccinated": True},
        {"id": "P3", "status": "none"},
    ]
    _write(tmp_path / "persons.json", json.dumps(persons, indent=2))
    lines = [
        {"a": "P1", "b": "P2", "start": "2022-03-01T08:00:00", "end": "2022-03-01T09:00:00", "kind": "meal"},
        {"a": "P2", "b": "P3", "start": "2022-03-02T08:00:00", "end": "2022-03-02T08:30:00"},
    ]
    _write(tmp_path / "contacts.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    mapping = parse_mapping(_user_mapping(files=[
        {"name": "persons", "path": "persons.json",
         "records": [{"type": "person", "match_columns": True, "keep_other_columns": True}]},
        {"name": "contacts", "path": "contacts.jsonl", "records": [{"type": "event", "match_columns": True}]},
    ]))

    report = import_files(sqlite_store, mapping, tmp_path, progress=False)

    assert sqlite_store.counts().persons == 3 and sqlite_store.counts().events == 2
    assert not report.problems
    p1, p2 = (sqlite_store.get_persons(["P1", "P2"])[i] for i in ("P1", "P2"))
    assert p1.lat == 31.23 and p1.attributes == {"age": "40"} and p2.household_id == "H1"
    assert p2.attributes == {"vaccinated": "true"}
    assert report.touched_person_ids == {"P1", "P2", "P3"}


def test_json_problems_carry_the_line_each_object_starts_on(tmp_path, sqlite_store):
    _write(tmp_path / "persons.json", (
        "[\n"
        '  {"id": "P1", "status": "confirmed"},\n'   # line 2
        "  {\n"                                      # line 3: the object starts here
        '    "id": "P2",\n'
        '    "onset_at": "not a date"\n'
        "  },\n"
        '  {"status": "none"},\n'                    # line 7
        "  42\n"                                     # line 8
        "]\n"
    ))
    _write(tmp_path / "contacts.jsonl", '{"a": "P1", "b": "P2", "start": "2022-03-01", "end": "2022-03-01"}\n{"a": "P1",\n')
    mapping = parse_mapping(_user_mapping(files=[
        {"name": "persons", "path": "persons.json", "records": [{"type": "person", "match_columns": True}]},
        {"name": "contacts", "path": "contacts.jsonl", "records": [{"type": "event", "match_columns": True}]},
    ]))

    with pytest.raises(ImportRejected) as caught:
        import_files(sqlite_store, mapping, tmp_path, progress=False)

    errors = _errors(caught.value)
    assert set(errors) == {("persons.json", 3), ("persons.json", 7), ("persons.json", 8), ("contacts.jsonl", 2)}
    assert errors[("persons.json", 3)].startswith("onset_at: 'not a date' is not a date")
    assert errors[("persons.json", 7)] == "person: missing id"
    assert errors[("persons.json", 8)] == "expected a JSON object, found int"
    assert errors[("contacts.jsonl", 2)].startswith("invalid JSON")
    assert sqlite_store.counts() == zero_counts()


# --- mappings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": [{"path": "x.csv", "records": [{"type": "person", "fields": {"idd": "id"}}]}]}, "person has no field(s) idd"),
        ({"files": [{"path": "x.csv", "records": [{"type": "event", "fields": {
            "start": {"lookup": "nowhere", "key": "a", "column": "t"}}}]}]}, "looks up unknown file 'nowhere'"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"files": [{"path": "x.csv", "records": [{"type": "person", "fields": {
            "id": {"column": "a", "const": "b"}}}]}]}, "exactly one of column, const"),
    ],
)
def test_invalid_mappings_are_explained(change, message):
    data = {"name": "m", "files": [{"path": "x.csv", "records": [{"type": "person", "fields": {"id": "id"}}]}]}
    data.update(change)
    with pytest.raises(MappingError, match=re.escape(message)):
        parse_mapping(data)
