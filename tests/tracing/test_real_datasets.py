"""Tracing on real outbreaks, checked against independent computations on the raw CSV files.

Runs on every backend: the same figures must come out of SQLite and Neo4j.
"""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta, timezone

import networkx as nx
import pytest

from graph_models import ChainDirection, ChainVia
from tracing import chain, clusters, trace_case
from tracing.importing.loader import import_files
from tracing.importing.mapping import bundled_mapping

END_OF_MERS = datetime(2015, 7, 1, tzinfo=timezone.utc)


def _load(store, datasets, name):
    return import_files(store, bundled_mapping(name), datasets / name, progress=False)


def _rows(path):
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def mers(store, datasets):
    _load(store, datasets, "mers_korea_2015")
    return store


def _mers_pairs(datasets):
    return [(r["from"], r["to"]) for r in _rows(datasets / "mers_korea_2015" / "mers_korea_2015_contacts.csv")]


@pytest.mark.parametrize("root", ["SK_14", "SK_1", "SK_16"])
def test_mers_descendants_match_the_contacts_file(mers, datasets, root):
    expected = nx.descendants(nx.DiGraph(_mers_pairs(datasets)), root)
    got = chain(mers, root, direction=ChainDirection.DOWN, via=ChainVia.LINKS, hops=20, now=END_OF_MERS)
    assert got.person_ids == expected
    assert len(expected) > 0


def test_mers_time_respecting_descendants_cover_the_links(mers, datasets):
    # Every linked infectee with a recorded exposure window is reached along
    # time-respecting contact events too (contacts are undirected, so co-exposed
    # persons may be reached as well: a superset, never less).
    linelist = {r["id"]: r for r in _rows(datasets / "mers_korea_2015" / "mers_korea_2015_linelist.csv")}
    graph = nx.DiGraph([(a, b) for a, b in _mers_pairs(datasets) if linelist[b]["dt_start_exp"] != "NA"])
    for root in ("SK_1", "SK_14"):
        expected = nx.descendants(graph, root)
        got = chain(mers, root, direction=ChainDirection.DOWN, via=ChainVia.CONTACTS, hops=20, now=END_OF_MERS)
        assert expected <= got.person_ids


def test_mers_sk14_close_contacts_follow_the_window_rule(mers, datasets):
    # Independently: each pair with SK_14 is a contact over the infectee's exposure window
    # (whole days); it makes a close contact if it overlaps SK_14's window, onset − 4 days on.
    linelist = {r["id"]: r for r in _rows(datasets / "mers_korea_2015" / "mers_korea_2015_linelist.csv")}
    window_start = date.fromisoformat(linelist["SK_14"]["dt_onset"]) - timedelta(days=4)
    expected = set()
    for a, b in _mers_pairs(datasets):
        if "SK_14" in (a, b) and linelist[b]["dt_end_exp"] != "NA":
            if date.fromisoformat(linelist[b]["dt_end_exp"]) >= window_start:
                expected.add(b if a == "SK_14" else a)
    assert "SK_1" in expected  # SK_14's source met it inside SK_14's own window
    result = trace_case(mers, "SK_14", now=END_OF_MERS)
    assert {c.person_id for c in result.close} == expected
    assert all(c.evidence and c.source_id == "SK_14" for c in result.close)
    assert {c.person_id for c in mers.derived_for_case("SK_14") if c.contact_class == "close"} == expected
    # Secondary contacts are reached through a close contact, after that contact's exposure.
    assert result.secondary and all(c.source_id in expected for c in result.secondary)


def _ds4c_reference(datasets):
    """who-infected-whom from PatientInfo.csv, resolved by hand: #global_num refs, self-loops dropped."""
    rows = _rows(datasets / "ds4c_korea_covid19" / "PatientInfo.csv")
    by_global = {}
    for r in rows:
        if r["global_num"]:
            by_global.setdefault(r["global_num"], r["patient_id"])
    graph = nx.DiGraph()
    for r in rows:
        ref = r["infected_by"].strip()
        if not ref:
            continue
        infector = by_global[ref[1:]] if ref.startswith("#") else ref
        if infector != r["patient_id"]:
            graph.add_edge(infector, r["patient_id"])
    return graph


@pytest.fixture
def ds4c(store, datasets):
    report = _load(store, datasets, "ds4c_korea_covid19")
    return store, report


def test_ds4c_clusters_match_networkx(ds4c, datasets):
    store, _ = ds4c
    reference = _ds4c_reference(datasets)
    expected = sorted((sorted(c) for c in nx.weakly_connected_components(reference)), key=lambda c: (-len(c), c[0]))
    got = clusters(store, via=ChainVia.LINKS)
    assert [c.members for c in got] == expected
    assert got[0].size == max(len(c) for c in expected)


def test_ds4c_chains_match_networkx(ds4c, datasets):
    store, _ = ds4c
    reference = _ds4c_reference(datasets)
    now = datetime(2020, 6, 2, tzinfo=timezone.utc)
    # The biggest sources, the deepest chain's end, and a member of a 2-cycle.
    by_reach = sorted(reference, key=lambda n: (-len(nx.descendants(reference, n)), n))
    deepest = nx.dag_longest_path(nx.DiGraph((a, b) for a, b in reference.edges if not reference.has_edge(b, a)))
    roots = [*by_reach[:3], deepest[-1], "6009000007"]
    assert "2000000205" in roots[:3]  # 51 infectees, per the dataset README
    for root in roots:
        down = chain(store, root, via=ChainVia.LINKS, hops=10, now=now)
        assert {m.person_id: m.hops for m in down.members} == nx.single_source_shortest_path_length(reference, root, 10)
        up = chain(store, root, direction=ChainDirection.UP, via=ChainVia.LINKS, hops=10, now=now)
        assert up.person_ids == nx.ancestors(reference, root)


def test_ds4c_messy_rows_are_in_the_import_report(ds4c):
    _, report = ds4c
    text = "\n".join(str(p) for p in report.problems)
    for self_loop in ("1100000028", "6100000066"):
        assert self_loop in text
    for dangling in ("2002000001", "2017000005", "6100000384"):
        assert dangling in text
    assert "6009000007" in text and "6009000008" in text  # one of the 2-cycles
