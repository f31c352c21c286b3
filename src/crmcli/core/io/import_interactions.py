"""Importing interactions (calls, visits, messages): the rules of `crm customer log` per row, a re-run that
finds the same contact (customer, time, channel, summary) already recorded counts it unchanged, and the
customers' next follow-up moves as it would have for each contact logged in the file's order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import utcnow
from crmcli.core.context import StoreContext
from crmcli.core.customers import C, parse_channel
from crmcli.core.dates import parse_date
from crmcli.core.io import lookups
from crmcli.core.io.importer import Options, Outcome, Row, RowError, batch_audit, next_id
from crmcli.core.io.mapping import Plan
from crmcli.core.io.rowfields import PlannedHandler, text, when
from crmcli.errors import CrmError
from crmcli.i18n import _
from crmcli.store.bulk import insert_rows
from crmcli.store.models import Interaction

INTERACTION = Interaction.__table__


@dataclass
class Prepared:
    key: lookups.CustomerKey
    channel: str
    summary: str
    outcome: str | None
    at: datetime
    on: date
    next_date: date | None


class InteractionHandler(PlannedHandler):
    def __init__(self, session: Session, ctx: StoreContext, run_id: int, plan: Plan | None, options: Options) -> None:
        super().__init__(session, ctx, run_id, plan, options)
        self.next_id = next_id(session, INTERACTION, "interaction")
        self.actor = audit.actor()

    def prepare(self, row: Row) -> Prepared:
        f = row.fields
        key = lookups.customer_key(f, self.ctx.region)
        raw_channel = f.get("channel")
        if raw_channel is None:
            raise RowError("channel", None, _("The channel is missing.") + " " +
                           _("Use one of: {choices}.").format(choices="phone, email, sms, wechat, visit, social, other"))
        try:
            channel = parse_channel(raw_channel)
        except CrmError as e:
            raise RowError.of(e, "channel", raw_channel) from None
        summary = text(f, "summary", 10_000)
        if not summary:
            raise RowError("summary", f.get("summary"), _("The summary must not be empty."))
        at, on = when(f.get("occurred_at"), "occurred_at", self.ctx, self.options.date_format)
        next_date = None
        if f.get("next_date"):
            try:
                next_date = parse_date(f["next_date"], today=on, field="next_date",
                                       date_format=self.options.date_format, future=True)
            except CrmError as e:
                raise RowError.of(e, "next_date", f["next_date"]) from None
            if next_date < on:
                raise RowError("next_date", f["next_date"], _("The next follow-up {date} is before the contact ({on}).")
                               .format(date=next_date, on=on))
        return Prepared(key, channel, summary, text(f, "outcome", 500), at, on, next_date)

    def apply(self, batch: list[tuple[Row, Prepared]]) -> list[str | RowError]:
        resolver = lookups.Resolver(self.session)
        resolver.load([p.key for _r, p in batch])
        resolved: list[int | RowError] = []
        for _row, p in batch:
            try:
                resolved.append(resolver.resolve(p.key))
            except RowError as e:
                resolved.append(e)
        ids = sorted({c for c in resolved if isinstance(c, int)})
        known = self._existing(ids)
        follow = {r.id: r.next_follow_up for r in self.session.execute(
            select(C.c.id, C.c.next_follow_up).where(C.c.id.in_(ids)))} if ids else {}
        original = dict(follow)
        outcomes: list[str | RowError] = []
        rows: list[dict[str, Any]] = []
        now = utcnow()
        for (_row, p), cid in zip(batch, resolved):
            if isinstance(cid, RowError):
                outcomes.append(cid)
                continue
            signature = (cid, p.at.replace(tzinfo=None), p.channel, p.summary)
            if signature in known:
                outcomes.append(Outcome.UNCHANGED)
                continue
            known.add(signature)
            iid = self.next_id
            self.next_id += 1
            old = follow[cid]
            # As `crm customer log` (core.customers.mark_follow_up): a next date becomes the follow-up, a contact
            # without one settles a follow-up that was due by its day. A next date already past (history) is
            # kept on the interaction but does not become a follow-up: `customer log` refuses those.
            if p.next_date is not None and p.next_date >= self.ctx.today:
                follow[cid] = p.next_date
            elif old is not None and old <= p.on:
                follow[cid] = None
            rows.append({"id": iid, "customer_id": cid, "channel": p.channel, "summary": p.summary,
                         "outcome": p.outcome, "occurred_at": p.at, "next_date": p.next_date, "actor": self.actor,
                         "created_at": now, "import_id": self.run_id})
            outcomes.append(Outcome.CREATED)
        if rows:
            columns = list(rows[0])
            insert_rows(self.session, INTERACTION, columns, [tuple(r[c] for c in columns) for r in rows])
            audit.record(self.session, **batch_audit("interaction", self.run_id, rows))
        changed = [{"cid": cid, "value": value} for cid, value in follow.items() if original[cid] != value]
        if changed:
            # Follow-up moves are customer changes: one audit row each, as `crm customer log` records them.
            audit.record_many(self.session, [{"entity": "customer", "entity_id": c["cid"], "customer_id": c["cid"],
                                              "action": "follow-up", "before": {"next_follow_up": original[c["cid"]]},
                                              "after": {"next_follow_up": c["value"], "import_id": self.run_id}}
                                             for c in changed])
            self.session.execute(update(C).where(C.c.id == bindparam("cid")).values(
                next_follow_up=bindparam("value"), updated_at=now), changed)
        return outcomes

    def _existing(self, customer_ids: list[int]) -> set[tuple[int, datetime, str, str]]:
        """Signatures (customer, time, channel, summary) of the interactions these customers already have."""
        out: set[tuple[int, datetime, str, str]] = set()
        for part in lookups.chunked(customer_ids, 900):
            for r in self.session.execute(select(INTERACTION.c.customer_id, INTERACTION.c.occurred_at,
                                                 INTERACTION.c.channel, INTERACTION.c.summary)
                                          .where(INTERACTION.c.customer_id.in_(part))):
                at = r.occurred_at.replace(tzinfo=None) if r.occurred_at else r.occurred_at
                out.add((r.customer_id, at, r.channel, r.summary))
        return out

