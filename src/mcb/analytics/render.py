"""Rendering: a report's JSON-able dict (its builder's output) as table, json, csv, markdown or html.

A report module turns its dict into a ``Layout`` (tiles, a bar chart, tables, notes); the renderers here
know nothing about any particular report. Values stay raw in the layout (numbers, ISO dates) and each
column says what kind of value it holds, so the CSV gets plain numbers and the human formats get
"$1,234.00", "45.0%" and "3.20x".

The HTML is one self-contained page with inline styles and no images or scripts, so the same bytes work
as a file, in a browser and in an e-mail client (bars are table cells, not a chart image).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import Environment, select_autoescape
from rich.console import Console
from rich.table import Table as RichTable

Kind = Literal["text", "count", "money", "rate", "ratio", "days", "date", "change"]
FORMATS: tuple[str, ...] = ("table", "json", "csv", "markdown", "html")


@dataclass(frozen=True)
class Column:
    label: str
    kind: Kind = "text"
    key: str | None = None  # the CSV header (snake_case); defaults to the label


@dataclass
class Table:
    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Any]]
    note: str | None = None


@dataclass
class Layout:
    title: str
    subtitle: str = ""
    tiles: list[tuple[str, Any, Kind]] = field(default_factory=list)
    bars_title: str = ""
    bars: list[tuple[str, float]] = field(default_factory=list)
    bars_kind: Kind = "count"
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    csv: Table | None = None
    """The table the CSV format writes (default: the first table)."""


# ---------------------------------------------------------------------------- value formatting


def fmt(value: Any, kind: Kind = "text") -> str:
    """A value as people read it; "–" for a missing or undefined value."""
    if value is None:
        return "–"
    if kind == "money":
        amount = float(value)
        return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"
    if kind == "rate":
        return f"{float(value) * 100:.1f}%"
    if kind == "ratio":
        return f"{float(value):.2f}x"
    if kind == "count":
        return f"{int(value):,}"
    if kind == "days":
        return f"{float(value):.1f} d"
    if kind == "change":
        pct = float(value)
        return f"{'+' if pct >= 0 else ''}{pct * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


# ---------------------------------------------------------------------------- renderers


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


def to_csv(layout: Layout) -> str:
    table = layout.csv or (layout.tables[0] if layout.tables else None)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if table is None:
        return ""
    writer.writerow([c.key or c.label for c in table.columns])
    for row in table.rows:
        writer.writerow([_csv_value(v) for v in row])
    return buffer.getvalue()


def to_markdown(layout: Layout) -> str:
    lines = [f"# {layout.title}", ""]
    if layout.subtitle:
        lines += [layout.subtitle, ""]
    if layout.tiles:
        lines += ["| " + " | ".join(label for label, _, _ in layout.tiles) + " |",
                  "|" + "---|" * len(layout.tiles),
                  "| " + " | ".join(fmt(v, k) for _, v, k in layout.tiles) + " |", ""]
    for note in layout.notes:
        lines += [f"> **Note:** {note}", ""]
    for table in layout.tables:
        lines += [f"## {table.title}", ""]
        if not table.rows:
            lines += ["(none)", ""]
            continue
        lines.append("| " + " | ".join(c.label for c in table.columns) + " |")
        lines.append("|" + "|".join("---:" if c.kind not in ("text", "date") else "---" for c in table.columns) + "|")
        for row in table.rows:
            cells = [fmt(v, c.kind).replace("|", "\\|") for v, c in zip(row, table.columns, strict=True)]
            lines.append("| " + " | ".join(cells) + " |")
        if table.note:
            lines += ["", f"_{table.note}_"]
        lines.append("")
    return "\n".join(lines)


def to_console(layout: Layout, console: Console) -> None:
    console.print(f"[bold]{layout.title}[/bold]")
    if layout.subtitle:
        console.print(layout.subtitle)
    if layout.tiles:
        tiles = RichTable(show_header=True, header_style="bold")
        for label, _, _ in layout.tiles:
            tiles.add_column(label, justify="right")
        tiles.add_row(*(fmt(v, k) for _, v, k in layout.tiles))
        console.print(tiles)
    for note in layout.notes:
        console.print(f"[yellow]Note:[/yellow] {note}")
    for table in layout.tables:
        rich = RichTable(title=table.title, title_justify="left", title_style="bold", caption=table.note)
        for c in table.columns:
            rich.add_column(c.label, justify="left" if c.kind in ("text", "date") else "right")
        for row in table.rows:
            rich.add_row(*(fmt(v, c.kind) for v, c in zip(row, table.columns, strict=True)))
        if not table.rows:
            rich.add_row(*(["(none)"] + [""] * (len(table.columns) - 1)))
        console.print(rich)


def to_text(layout: Layout, width: int = 120) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    to_console(layout, console)
    return buffer.getvalue()


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ l.title }}</title></head>
<body style="margin:0;padding:16px;background:#f6f7f9;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1d2330;">
<div style="max-width:760px;margin:0 auto;background:#ffffff;padding:20px;border-radius:6px;">
<h1 style="font-size:20px;margin:0 0 4px 0;">{{ l.title }}</h1>
{% if l.subtitle %}<p style="margin:0 0 16px 0;color:#5b6475;">{{ l.subtitle }}</p>{% endif %}
{% if l.tiles %}<table role="presentation" style="width:100%;border-collapse:separate;border-spacing:6px;margin-bottom:12px;"><tr>
{% for label, value, kind in l.tiles %}<td style="background:#eef2f8;border-radius:6px;padding:10px;text-align:center;">
<div style="font-size:12px;color:#5b6475;">{{ label }}</div>
<div style="font-size:20px;font-weight:bold;{% if kind == 'ratio' and value is not none and value < 1 %}color:#c0392b;{% endif %}">{{ fmt(value, kind) }}</div></td>
{% endfor %}</tr></table>{% endif %}
{% for note in l.notes %}<p style="background:#fff4d6;border-left:4px solid #e0a800;padding:8px;margin:8px 0;">{{ note }}</p>{% endfor %}
{% if l.bars %}<h2 style="font-size:16px;margin:16px 0 6px 0;">{{ l.bars_title }}</h2>
<table role="presentation" style="width:100%;border-collapse:collapse;">
{% for label, value in l.bars %}<tr><td style="width:130px;padding:3px 6px 3px 0;font-size:13px;white-space:nowrap;">{{ label }}</td>
<td style="padding:3px 0;"><table role="presentation" style="border-collapse:collapse;width:{{ bar_width(value) }}%;"><tr>
<td style="background:#3b6fd8;height:16px;min-width:2px;"></td></tr></table></td>
<td style="width:70px;text-align:right;font-size:13px;padding-left:6px;">{{ fmt(value, l.bars_kind) }}</td></tr>
{% endfor %}</table>{% endif %}
{% for t in l.tables %}<h2 style="font-size:16px;margin:18px 0 6px 0;">{{ t.title }}</h2>
<table style="width:100%;border-collapse:collapse;font-size:13px;">
<tr>{% for c in t.columns %}<th style="text-align:{{ 'left' if c.kind in ('text', 'date') else 'right' }};border-bottom:2px solid #d5dae3;padding:4px 6px;">{{ c.label }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr>{% for v in row %}{% set c = t.columns[loop.index0] %}<td style="text-align:{{ 'left' if c.kind in ('text', 'date') else 'right' }};border-bottom:1px solid #eceff4;padding:4px 6px;{% if c.kind == 'ratio' and v is not none and v < 1 %}color:#c0392b;{% endif %}">{{ fmt(v, c.kind) }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="{{ t.columns|length }}" style="padding:4px 6px;color:#5b6475;">(none)</td></tr>{% endfor %}
</table>{% if t.note %}<p style="font-size:12px;color:#5b6475;margin:4px 0;">{{ t.note }}</p>{% endif %}
{% endfor %}
</div></body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_template = _env.from_string(_HTML)


def to_html(layout: Layout) -> str:
    peak = max((v for _, v in layout.bars), default=0) or 1

    def bar_width(value: float) -> float:
        return round(max(1.0, 100.0 * float(value) / float(peak)), 1)

    return _template.render(l=layout, fmt=fmt, bar_width=bar_width)


def render(data: dict[str, Any], layout: Layout, fmt_name: str, *, width: int = 120) -> str:
    """The report in one of ``FORMATS``."""
    if fmt_name == "json":
        return to_json(data)
    if fmt_name == "csv":
        return to_csv(layout)
    if fmt_name == "markdown":
        return to_markdown(layout)
    if fmt_name == "html":
        return to_html(layout)
    if fmt_name == "table":
        return to_text(layout, width)
    raise ValueError(f"unknown format {fmt_name!r}")
