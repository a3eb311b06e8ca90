"""Transfer manifests (转运名单) per site and per vehicle: CSV, XLSX and printable PDF.

Headers are bilingual (姓名/Name, 类别/Class, …). Times are printed at a
display offset (UTC+8 by default, as the directives' calendar days). The
PDF uses reportlab's built-in CID font ``STSong-Light`` for Chinese, so no
font file is needed.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from graph_models import Person
from graph_models.transfers import IsolationSite, Transfer, TransferState, Vehicle

__all__ = ["HEADERS", "ManifestRow", "manifest_rows", "write_csv", "write_manifest", "write_pdf", "write_xlsx"]

HEADERS = (
    "批次/Batch", "顺序/Order", "姓名/Name", "证件号/ID number", "电话/Phone", "户/Household", "类别/Class",
    "接人地址/Pickup address", "计划接人/Planned pickup", "计划到达/Planned arrival", "隔离点/Site", "房间/Room",
    "车辆/Vehicle", "状态/Status",
)
_STATE_ZH = {
    TransferState.PLANNED: "待转运 planned", TransferState.PICKED_UP: "转运中 picked up",
    TransferState.ARRIVED: "已入住 arrived", TransferState.DISCHARGED: "已解除 discharged",
    TransferState.CANCELLED: "已取消 cancelled",
}


@dataclass(frozen=True)
class ManifestRow:
    batch: str
    order: str
    name: str
    id_number: str
    phone: str
    household: str
    category: str
    address: str
    planned_pickup: str
    planned_arrival: str
    site: str
    room: str
    vehicle: str
    status: str


def _fmt(value: datetime | None, offset: timedelta) -> str:
    return (value.astimezone(timezone(offset))).strftime("%m-%d %H:%M") if value else ""


def manifest_rows(
    transfers: Sequence[Transfer], persons: Mapping[str, Person], sites: Mapping[str, IsolationSite],
    vehicles: Mapping[str, Vehicle], *, offset: timedelta = timedelta(hours=8),
) -> list[ManifestRow]:
    """One row per transfer, ordered by vehicle, batch and pickup order (cancelled ones left out)."""
    rows = []
    ordered = sorted(
        (t for t in transfers if t.state is not TransferState.CANCELLED),
        key=lambda t: (t.vehicle_id or "~", t.batch or 0, t.pickup_order or 0, t.id),
    )
    for t in ordered:
        p = persons.get(t.person_id)
        site = sites.get(t.site_id)
        vehicle = vehicles.get(t.vehicle_id) if t.vehicle_id else None
        address = (p.address if p else None) or (f"{p.lat:.5f},{p.lon:.5f}" if p and p.lat is not None else "")
        rows.append(ManifestRow(
            batch=str(t.batch or ""), order=str(t.pickup_order or ""), name=(p.name if p else None) or t.person_id,
            id_number=(p.id_number if p else None) or "", phone=(p.phone if p else None) or "",
            household="" if t.household.startswith("person:") else t.household,
            category=f"{t.category.label_zh} {t.category.value}", address=address,
            planned_pickup=_fmt(t.planned_pickup_at, offset), planned_arrival=_fmt(t.planned_arrival_at, offset),
            site=site.name if site else t.site_id, room=str(t.room),
            vehicle=" ".join(x for x in (t.vehicle_id, vehicle.plate if vehicle else None) if x) if t.vehicle_id else "",
            status=_STATE_ZH[t.state],
        ))
    return rows


def write_csv(rows: Sequence[ManifestRow], path: Path, *, title: str = "") -> Path:
    # utf-8-sig: Excel opens it with the Chinese intact.
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        writer.writerows(astuple(r) for r in rows)
    return path


def write_xlsx(rows: Sequence[ManifestRow], path: Path, *, title: str = "") -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = "转运名单 manifest"
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append(list(HEADERS))
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for r in rows:
        ws.append(list(astuple(r)))
    widths = (6, 6, 12, 20, 14, 10, 14, 28, 13, 13, 22, 6, 16, 16)
    for i, width in enumerate(widths):
        ws.column_dimensions[chr(ord("A") + i)].width = width
    ws.freeze_panes = "A3"
    ws.print_title_rows = "2:2"
    ws.page_setup.orientation = "landscape"
    wb.save(path)
    return path


def write_pdf(rows: Sequence[ManifestRow], path: Path, *, title: str = "") -> Path:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import (
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    font = "STSong-Light"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    cell = ParagraphStyle("cell", fontName=font, fontSize=7.5, leading=9)
    head = ParagraphStyle("head", parent=cell, fontSize=7.5)
    big = ParagraphStyle("title", fontName=font, fontSize=13, leading=16)
    columns = (HEADERS[0], HEADERS[1], HEADERS[2], HEADERS[4], HEADERS[5], HEADERS[6], HEADERS[7], HEADERS[8],
               HEADERS[10], HEADERS[11], HEADERS[12], HEADERS[13])
    keep = (0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13)
    data = [[Paragraph(h, head) for h in columns]]
    for r in rows:
        values = astuple(r)
        data.append([Paragraph(str(values[i]), cell) for i in keep])
    widths = [14, 14, 22, 26, 16, 24, 46, 22, 34, 12, 24, 22]  # mm, fits landscape A4
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    doc = SimpleDocTemplate(str(path), pagesize=landscape(A4), leftMargin=10 * mm, rightMargin=10 * mm,
                            topMargin=10 * mm, bottomMargin=10 * mm, title=title)
    doc.build([Paragraph(title, big), Spacer(1, 4 * mm), table])
    return path


def write_manifest(rows: Sequence[ManifestRow], path: Path, *, title: str = "") -> Path:
    """Write by extension: ``.csv``, ``.xlsx`` or ``.pdf``."""
    writers = {".csv": write_csv, ".xlsx": write_xlsx, ".pdf": write_pdf}
    writer = writers.get(Path(path).suffix.lower())
    if writer is None:
        raise ValueError(f"unknown manifest format {Path(path).suffix!r}: use .csv, .xlsx or .pdf")
    return writer(rows, Path(path), title=title)
