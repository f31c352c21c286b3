"""The customer card as a Rich panel, laid out by importance: identity and contact on top, the
at-a-glance row (tier, points, satisfaction, churn risk), then purchases, preferences and interactions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.cells import cell_len
from rich.text import Text

from crmcli.core.card import CardData, Slot
from crmcli.core.contacts import mask_email, mask_phone
from crmcli.core.money import format_money
from crmcli.i18n import _

DASH = "—"
TITLE_NAME_CELLS = 40
STYLES = {"good": "green", "warn": "yellow", "bad": "bold red", None: "bold"}


def _d(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _fields(rows: list[tuple[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(_d(value)))
    return grid


def _section(title: str, body: RenderableType) -> RenderableType:
    return Group(Text(title, style="bold underline"), body)


def render_card(card: CardData, *, mask: bool = False) -> Panel:
    c = card.customer
    gender = {"female": _("female"), "male": _("male"), "other": _("other")}.get(c["gender"] or "", None)
    age = f"{c['age']} ({_d(c['birthday'])})" if c["age"] is not None else None
    long_name = cell_len(c["name"]) > TITLE_NAME_CELLS
    identity = _fields([*([(_("Name"), c["name"])] if long_name else []), (_("Gender"), gender), (_("Age"), age), (_("Occupation"), c["occupation"]),
                        (_("Company"), c["company"]), (_("City"), c["city"]), (_("Address"), c["address"]),
                        (_("Source"), c["source"]),
                        (_("Referred by"), f"{c['referred_by']['code']} {c['referred_by']['name']}" if c["referred_by"] else None),
                        (_("Customer since"), c["created_at"].date() if c["created_at"] else None)])
    phones = [mask_phone(p) if mask else p for p in card.contacts["phones"]]
    emails = [mask_email(e) if mask else e for e in card.contacts["emails"]]
    social = [f"{s['network']}: {s['handle']}" for s in card.contacts["social"]]
    consent = ", ".join(f"{ch} {'✓' if v['granted'] else '✗'}" for ch, v in sorted(card.consent.items())) or None
    contact = _fields([(_("Phone"), "\n".join(phones) or None), (_("E-mail"), "\n".join(emails) or None),
                       (_("Social"), "\n".join(social) or None),
                       (_("Prefers"), card.contacts["preferred_channel"]), (_("Consent"), consent)])
    top = Table.grid(expand=True, padding=(0, 2))
    top.add_column(ratio=1)
    top.add_column(ratio=1)
    top.add_row(_section(_("Identity"), identity), _section(_("Contact"), contact))

    glance = Table(box=box.ROUNDED, expand=True, show_edge=True, padding=(0, 1))
    labels = {"tier": _("Tier"), "points": _("Points"), "satisfaction": _("Satisfaction"), "churn": _("Churn risk")}
    cells = []
    for name, label in labels.items():
        glance.add_column(label, justify="center", overflow="fold")
        slot: Slot | None = card.slots.get(name)
        cells.append(Text(slot.text, style=STYLES.get(slot.style, "bold")) if slot else Text(DASH, style="dim"))
    glance.add_row(*cells)

    p = card.purchases
    cur = card.currency
    summary = _fields([(_("Orders"), p["orders"]), (_("Total spent"), format_money(p["net_minor"], cur)),
                       (_("Average order"), format_money(p["average_minor"], cur) if p["orders"] else None),
                       (_("Refunded"), format_money(p["refunded_minor"], cur) if p["refunded_minor"] else None),
                       (_("First purchase"), p["first"]), (_("Last purchase"), p["last"])])
    recent = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True)
    recent.add_column(_("Date"), no_wrap=True)
    recent.add_column(_("Product"), overflow="fold", ratio=1)
    recent.add_column(_("Amount"), justify="right", no_wrap=True)
    for r in card.recent_purchases:
        recent.add_row(_d(r["date"]), r["product"] or r["category"] or DASH, format_money(r["amount_minor"], cur))
    purchases = Table.grid(expand=True, padding=(0, 2))
    purchases.add_column()  # as wide as its labels and amounts, so a large amount is never split
    purchases.add_column(ratio=1)
    purchases.add_row(_section(_("Purchases"), summary),
                      _section(_("Recent purchases"), recent if card.recent_purchases else Text(DASH, style="dim")))

    prefs = [(k, v) for k, v in card.preferences.items()]
    # The free-text preferences go on their own line: labelled "Notes" they were mistaken for the notes below.
    pref_lines: list[RenderableType] = [_fields(prefs)] if prefs else []
    if card.preferences_text:
        pref_lines.append(Text(card.preferences_text))
    pref_body = Group(*pref_lines) if pref_lines else Text(DASH, style="dim")
    tags = Text(" ".join(f"#{t}" for t in card.tags) or DASH, style="cyan")
    inter = Table.grid(padding=(0, 1))
    inter.add_column(style="dim", no_wrap=True)
    inter.add_column(overflow="fold")
    for i in card.interactions:
        inter.add_row(f"{_d(i['at'])} {i['channel']}", i["summary"] + (f" → {i['outcome']}" if i["outcome"] else ""))
    follow = Text(_("Next follow-up: {date}").format(date=_d(card.next_follow_up)),
                  style="bold yellow" if card.next_follow_up else "dim")
    bottom = Table.grid(expand=True, padding=(0, 2))
    bottom.add_column(ratio=1)
    bottom.add_column(ratio=1)
    bottom.add_row(_section(_("Preferences"), Group(pref_body, tags)),
                   _section(_("Interactions"), Group(inter if card.interactions else Text(DASH, style="dim"), follow)))
    parts: list[RenderableType] = [top, glance, purchases, bottom]
    if c["notes"]:
        parts.append(_section(_("Notes"), Text(c["notes"])))
    # The code always shows; a very long name is shortened here and shown in full under Identity.
    name = Text(c["name"], style="bold")
    name.truncate(TITLE_NAME_CELLS, overflow="ellipsis")
    title = Text.assemble(name, "  ", (c["code"], "cyan"))
    if c["deleted"]:
        title.append("  " + _("(deleted)"), style="red")
    return Panel(Group(*parts), title=title, title_align="left", box=box.HEAVY, padding=(0, 1))
