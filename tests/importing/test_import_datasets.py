"""Importing the real datasets with the bundled mappings: counts, semantics and documented quirks.

Every expectation is recomputed from the CSV files here; the few literal
values are the facts the dataset READMEs document, checked against the files
first so that a changed dataset fails loudly rather than silently.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from graph_models import PersonStatus
from tracing.importing import import_files

from .helpers import local_day, present, rows, rows_with_lines


def _problems(report, severity: str, containing: str) -> list:
    return [p for p in report.problems if p.severity == severity and containing in p.reason]


# --- MERS ---------------------------------------------------------------------------------------


def test_mers_persons_links_and_exposure_window_events(datasets, sqlite_store):
    folder = datasets / "mers_korea_2015"
    linelist = {r["id"]: r for r in rows(folder / "mers_korea_2015_linelist.csv")}
    contacts = rows_with_lines(folder / "mers_korea_2015_contacts.csv")

    report = import_files(sqlite_store, "mers_korea_2015", folder, progress=False)

    def has_window(row) -> bool:
        infectee = linelist[row["to"]]
        return present(infectee["dt_start_exp"]) and present(infectee["dt_end_exp"])

    windowed = [row for _, row in contacts if has_window(row)]
    counts = sqlite_store.counts()
    assert counts.persons == len(linelist) == 162
    assert counts.links == len({(r["from"], r["to"]) for _, r in contacts}) == 98
    assert counts.events == len({(r["from"], r["to"]) for r in windowed})
    assert counts.places == counts.visits == 0
    assert not report.errors
    # Pairs whose infectee has no exposure window keep their link, lose the event, and say so.
    assert {p.line for p in report.warnings} == {line for line, r in contacts if not has_window(r)}
    assert all("dt_start_exp" in p.reason for p in report.warnings)

    events = {(e.a, e.b): e for e in sqlite_store.iter_events()}
    for row in windowed:
        event = events[(row["from"], row["to"])]
        infectee = linelist[row["to"]]
        assert event.start == local_day(infectee["dt_start_exp"], "Asia/Seoul")
        assert event.end == local_day(infectee["dt_end_exp"], "Asia/Seoul", end=True)
        assert event.kind == ("household" if row["exposure"].startswith("Family") else "healthcare")
        assert event.closeness == "close"
    links = {(k.infector, k.infectee): k for k in sqlite_store.iter_links()}
    family = [r for _, r in contacts if r["exposure"] == "Family member "]  # the trailing space is real
    assert family and links[(family[0]["from"], family[0]["to"])].exposure == "Family member"

    persons = sqlite_store.get_persons(linelist)
    for pid, row in linelist.items():
        person = persons[pid]
        assert person.status is PersonStatus.CONFIRMED
        expected_onset = local_day(row["dt_onset"], "Asia/Seoul") if present(row["dt_onset"]) else None
        assert person.onset_at == expected_onset
        assert person.reported_at == local_day(row["dt_report"], "Asia/Seoul")
        assert person.sampled_at == local_day(row["dt_diag"], "Asia/Seoul")
        assert person.attributes["age"] == int(row["age"]) and person.attributes["loc_hosp"] == row["loc_hosp"]
    assert report.touched_person_ids == set(linelist)


# --- DS4C ---------------------------------------------------------------------------------------


def _ds4c_expected(folder):
    patients = rows_with_lines(folder / "PatientInfo.csv")
    ids = {r["patient_id"] for _, r in patients}
    by_global: dict[str, set[str]] = defaultdict(set)
    for _, r in patients:
        if r["global_num"]:
            by_global[r["global_num"]].add(r["patient_id"])
    pairs: dict[tuple[str, str], int] = {}
    hash_lines = {}
    for line, r in patients:
        infector = r["infected_by"]
        if not infector:
            continue
        if infector.startswith("#"):
            (resolved,) = by_global[infector[1:]]  # the README: every # reference matches one global_num
            hash_lines[line] = (infector, resolved)
            infector = resolved
        pairs[(infector, r["patient_id"])] = line
    return patients, ids, pairs, hash_lines


def test_ds4c_patients_links_routes_and_quirks(datasets, sqlite_store):
    folder = datasets / "ds4c_korea_covid19"
    patients, ids, pairs, hash_lines = _ds4c_expected(folder)
    routes = rows(folder / "PatientRoute.csv")
    self_loops = {a for a, b in pairs if a == b}
    links = {p for p in pairs if p[0] != p[1]}
    two_way = {frozenset(p) for p in links if (p[1], p[0]) in links}
    dangling = {a for a, _ in links if a not in ids}
    dangling_lines = {line for (a, _), line in pairs.items() if a in dangling}

    def place_id(r) -> str:
        return f"ds4c:{r['type']}@{float(r['latitude']):.5f},{float(r['longitude']):.5f}"

    # The documented quirks, checked against the file before they are expected of the import.
    assert self_loops == {"1100000028", "6100000066"}
    assert len(two_way) == 7 and frozenset({"6009000007", "6009000008"}) in two_way
    assert len(hash_lines) == 13
    assert dangling == {"2002000001", "2017000005", "6100000384"}

    report = import_files(sqlite_store, "ds4c_korea_covid19", folder, progress=False)

    counts = sqlite_store.counts()
    assert counts.persons == len(ids | dangling) == 4004 + 3
    assert counts.links == len(links)
    assert {(k.infector, k.infectee) for k in sqlite_store.iter_links()} == links
    assert counts.places == len({place_id(r) for r in routes})
    assert counts.visits == len({(r["patient_id"], place_id(r), r["date"]) for r in routes})
    assert counts.events == 0
    assert not report.errors

    notes = report.notes
    assert {p.line for p in notes} == set(hash_lines)
    for p in notes:
        reference, resolved = hash_lines[p.line]
        assert reference in p.reason and resolved in p.reason
    loops = _problems(report, "warning", "self-loop")
    assert {p.reason.split()[-3].rstrip(";") for p in loops} == self_loops
    assert all("dropped" in p.reason for p in loops)
    assert len(_problems(report, "warning", "two-way link")) == len(two_way)
    placeholders = _problems(report, "warning", "placeholder")
    assert {p.line for p in placeholders} == dangling_lines and len(placeholders) == 5
    assert {p.reason.split()[1] for p in placeholders} == dangling
    for person in sqlite_store.get_persons(dangling).values():
        assert person.status is PersonStatus.NONE and person.attributes["placeholder"] is True
    # The self-loop patients are still imported, as the confirmed cases they are.
    assert all(p.is_case for p in sqlite_store.get_persons(self_loops).values())
    pasted = [r["patient_id"] for _, r in patients if r["contact_number"].isdigit() and int(r["contact_number"]) > 100_000]
    assert len(_problems(report, "warning", "contact_number")) == len(pasted) == 2

    first = patients[0][1]
    person = sqlite_store.get_persons([first["patient_id"]])[first["patient_id"]]
    assert person.region == f"{first['province']}/{first['city']}"
    assert person.confirmed_at == local_day(first["confirmed_date"], "Asia/Seoul")
    route = routes[0]
    (visit,) = [v for v in sqlite_store.visits_of([route["patient_id"]]) if v.place_id == place_id(route)
                and v.start == local_day(route["date"], "Asia/Seoul")]
    assert visit.end == local_day(route["date"], "Asia/Seoul", end=True)
    place = sqlite_store.get_places([place_id(route)])[place_id(route)]
    assert place.kind == route["type"] and place.lat == round(float(route["latitude"]), 5)


# --- ebola_sim ----------------------------------------------------------------------------------


def test_ebola_clean_links_events_and_placeholder_infectors(datasets, sqlite_store):
    folder = datasets / "ebola_sim_2014"
    linelist = {r["case_id"]: r for r in rows(folder / "ebola_sim_clean_linelist.csv")}
    contacts = rows_with_lines(folder / "ebola_sim_clean_contacts.csv")
    pair_ids = {r["infector"] for _, r in contacts} | {r["case_id"] for _, r in contacts}
    missing = pair_ids - set(linelist)
    infection = {cid: r["date_of_infection"] for cid, r in linelist.items() if present(r["date_of_infection"])}

    report = import_files(sqlite_store, "ebola_sim_2014", folder, progress=False)

    counts = sqlite_store.counts()
    assert counts.persons == len(set(linelist) | pair_ids)
    assert report.placeholders["persons"] == len(missing)
    assert counts.links == len({(r["infector"], r["case_id"]) for _, r in contacts}) == 3800
    dated = {(r["infector"], r["case_id"]) for _, r in contacts if r["case_id"] in infection}
    assert counts.events == len(dated)
    assert not report.errors
    # Infectors never reported as cases still become persons (status none), each referring row warned.
    stored = sqlite_store.get_persons(missing)
    assert set(stored) == missing and all(p.status is PersonStatus.NONE for p in stored.values())
    missing_infectors = {r["infector"] for _, r in contacts} - set(linelist)
    assert missing_infectors and missing_infectors <= set(stored)
    warned = {line for line, r in contacts if r["infector"] in missing or r["case_id"] in missing}
    assert {p.line for p in report.warnings} == warned
    assert all(p.file == "ebola_sim_clean_contacts.csv" for p in report.warnings)

    for event in sqlite_store.iter_events():
        day = infection[event.b]
        assert event.start == local_day(day, "Africa/Freetown")
        assert event.end == local_day(day, "Africa/Freetown", end=True)
    first = next(r for _, r in contacts if r["case_id"] in infection)
    (link,) = sqlite_store.links_to([first["case_id"]])
    assert link.exposure == first["source"] and link.exposed_at == local_day(infection[first["case_id"]], "UTC")
    sample = next(iter(linelist.values()))
    person = sqlite_store.get_persons([sample["case_id"]])[sample["case_id"]]
    assert person.lat == float(sample["lat"]) and person.lon == float(sample["lon"])
    assert person.attributes["hospital"] == sample["hospital"]


# --- Hagelloch -----------------------------------------------------------------------------------


def test_hagelloch_prefixed_persons_and_links(datasets, sqlite_store):
    folder = datasets / "measles_hagelloch_1861"
    cases = rows(folder / "measles_hagelloch_1861.csv")

    report = import_files(sqlite_store, "measles_hagelloch_1861", folder, progress=False)

    expected_links = {(f"HAG_{r['infector']}", f"HAG_{r['case_ID']}") for r in cases if present(r["infector"])}
    assert sqlite_store.counts().persons == len({r["case_ID"] for r in cases}) == 188
    assert {(k.infector, k.infectee) for k in sqlite_store.iter_links()} == expected_links
    assert len(expected_links) == 184
    assert not report.problems
    by_id = sqlite_store.get_persons(f"HAG_{r['case_ID']}" for r in cases)
    for row in cases:
        person = by_id[f"HAG_{row['case_ID']}"]
        assert person.household_id == f"HAG_F{row['family_ID']}"
        assert person.onset_at == local_day(row["date_of_prodrome"], "UTC")
        assert person.attributes["x_loc"] == float(row["x_loc"]) and person.attributes["class"] == int(row["class"])


# --- idempotence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["mers_korea_2015", "ds4c_korea_covid19", "ebola_sim_2014", "measles_hagelloch_1861"]
)
def test_reimport_changes_nothing(datasets, sqlite_store, name):
    first = import_files(sqlite_store, name, datasets / name, progress=False)
    counts = sqlite_store.counts()
    events = sorted(e.model_dump_json() for e in sqlite_store.iter_events())
    persons = sorted(p.model_dump_json() for p in sqlite_store.iter_persons())

    second = import_files(sqlite_store, name, datasets / name, progress=False, batch_size=97)

    assert sqlite_store.counts() == counts
    assert sorted(e.model_dump_json() for e in sqlite_store.iter_events()) == events
    assert sorted(p.model_dump_json() for p in sqlite_store.iter_persons()) == persons
    assert second.problems == first.problems
    assert second.written == first.written
