"""Manifests per site and per vehicle: CSV, XLSX, PDF with bilingual headers."""

from __future__ import annotations

import csv
import shutil
import subprocess

import pytest
from openpyxl import load_workbook

from graph_models.transfers import IsolationPolicy
from tracing.transfers import confirm_plan, plan_transfers
from tracing.transfers.manifests import HEADERS, write_manifest
from tracing.transfers.service import manifest

from .conftest import NOW


@pytest.fixture
def confirmed(store, repo):
    plan = plan_transfers(store, policy=IsolationPolicy(), now=NOW)
    confirm_plan(repo, plan.id, now=NOW)
    return plan


def test_site_manifest_lists_its_persons_with_phone_address_and_household(store, repo, confirmed, tmp_path):
    east = {a.person_id for a in confirmed.assignments if a.site_id == "H-EAST"}
    title, rows = manifest(store, repo, site_id="H-EAST")
    assert "东区隔离酒店" in title and f"({len(east)}人" in title
    path = write_manifest(rows, tmp_path / "east.csv", title=title)
    with open(path, encoding="utf-8-sig", newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == HEADERS and "姓名/Name" in table[0] and "类别/Class" in table[0]
    by_name = {r[2]: dict(zip(HEADERS, r)) for r in table[1:]}
    assert len(by_name) == len(east)
    assert by_name["张三"]["电话/Phone"] == "13800000001"
    assert by_name["张三"]["接人地址/Pickup address"] == "朝阳路1号"
    assert by_name["张三"]["户/Household"] == by_name["李四"]["户/Household"] == "H1"
    assert by_name["张三"]["类别/Class"].startswith("密接")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM for Excel


def test_vehicle_manifest_is_in_pickup_order(store, repo, confirmed, tmp_path):
    vehicle = next(a.vehicle_id for a in confirmed.assignments if a.person_id == "C1")
    expected = sorted((a.batch, a.pickup_order) for a in confirmed.assignments if a.vehicle_id == vehicle)
    title, rows = manifest(store, repo, vehicle_id=vehicle)
    assert [(int(r.batch), int(r.order)) for r in rows] == expected
    path = write_manifest(rows, tmp_path / "v.xlsx", title=title)
    ws = load_workbook(path).active
    assert ws["A1"].value == title
    assert [c.value for c in ws[2]] == list(HEADERS)
    assert ws.max_row == 2 + len(expected)


def test_pdf_manifest_renders_chinese(store, repo, confirmed, tmp_path):
    title, rows = manifest(store, repo, site_id="H-EAST")
    path = write_manifest(rows, tmp_path / "east.pdf", title=title)
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and b"STSong-Light" in data
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
        assert "姓名/Name" in text and "张三" in text and "东区隔离酒店" in text


def test_manifest_needs_exactly_one_target(store, repo):
    with pytest.raises(ValueError):
        manifest(store, repo)
    with pytest.raises(ValueError):
        write_manifest([], "x.doc")
