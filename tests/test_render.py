"""The renderers on a hand-made layout: formats, CSV with raw values, HTML that escapes tenant data."""

from __future__ import annotations

from mcb.analytics.render import Column, Layout, Table, fmt, render


def layout() -> Layout:
    table = Table("Ads", [Column("Ad", key="ad_name"), Column("Spend", "money", "ad_spend"),
                          Column("ROAS", "ratio", "roas"), Column("Show rate", "rate", "show_rate")],
                  [["<script>alert(1)</script>", 1234.5, 0.5, 0.25], ["Plain | ad", -20.0, None, None]])
    return Layout(title="T & Co", subtitle="a week", tiles=[("Leads", 1200, "count")], bars=[("Leads", 10.0)],
                  tables=[table])


def test_formats_of_values() -> None:
    assert (fmt(1234.5, "money"), fmt(-20, "money"), fmt(0.25, "rate"), fmt(3.2, "ratio")) == \
        ("$1,234.50", "-$20.00", "25.0%", "3.20x")
    assert (fmt(None, "money"), fmt(1200, "count"), fmt(-0.324, "change")) == ("–", "1,200", "-32.4%")


def test_csv_keeps_raw_values_and_keys() -> None:
    assert render({}, layout(), "csv") == (
        "ad_name,ad_spend,roas,show_rate\n<script>alert(1)</script>,1234.5,0.5,0.25\nPlain | ad,-20.0,,\n")


def test_html_escapes_tenant_data_and_marks_roas_below_one() -> None:
    html = render({}, layout(), "html")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "T &amp; Co" in html and "$1,234.50" in html
    assert "color:#c0392b;\">0.50x" in html  # ROAS under 1 in red


def test_markdown_and_table() -> None:
    md = render({}, layout(), "markdown")
    assert "| Plain \\| ad | -$20.00 | – | – |" in md and "| 1,200 |" in md
    text = render({}, layout(), "table")
    assert "T & Co" in text and "$1,234.50" in text
