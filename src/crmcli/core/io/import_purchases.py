"""Importing purchases (sales and refunds): the rules of `crm purchase add` / `refund` for each row, the order
ref as the key that makes a re-run a no-op, bulk inserts, and the purchase hooks (points earning ...) run once
per batch with all the new ids, as core.purchases does for one purchase."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import utcnow
from crmcli.core.context import StoreContext
from crmcli.core.io import lookups
from crmcli.core.io.importer import Options, Outcome, Row, RowError, batch_audit, next_id
from crmcli.core.io.mapping import Plan
from crmcli.core.io.rowfields import PlannedHandler, quick_when, shared_cache, text, when
from crmcli.core.money import format_money, money_str, parse_amount
from crmcli.core.purchases import P, run_purchase_hooks
from crmcli.errors import CrmError
from crmcli.i18n import _
from crmcli.store.bulk import insert_rows, sqlite_date, sqlite_datetime

COLUMNS = ("id", "customer_id", "kind", "refund_of_id", "amount_minor", "purchased_at", "purchased_on", "product",
           "category", "quantity", "channel", "ref", "note", "created_at", "import_id")


_INDEX = {name: i for i, name in enumerate(COLUMNS)}


# On SQLite the handler gives these in their stored form (store.bulk.sqlite_datetime ...): converting each of
# millions of distinct times through SQLAlchemy's type processors cost ~15 us a row.
_STORED = ("purchased_at", "purchased_on", "created_at")


class _Pending:
    """A row written by this batch, looked up like a stored one (same-batch duplicates and refunds); it keeps
    the insert's tuple (a dict per row cost more than the lookups it serves)."""

    __slots__ = ("values", "on")

    def __init__(self, values: tuple[Any, ...], on: date) -> None:
        self.values = values
        self.on = on  # the business date as a date (the tuple may hold its stored text)

    def __getitem__(self, name: str) -> Any:
        if name == "purchased_on":
            return self.on
        return self.values[_INDEX[name]]


# The optional text columns (their cleaned values fill Prepared in this order) and their longest lengths, as
# `crm purchase add` checks them.
_TEXTS = (("product", 200), ("category", 100), ("channel", 50), ("ref", 100), ("note", 2000), ("refund_of_ref", 100))

KINDS = {"sale": "sale", "refund": "refund", "销售": "sale", "退款": "refund", "return": "refund"}


@dataclass(slots=True)
class Prepared:
    key: lookups.CustomerKey
    kind: str
    amount: int
    at: datetime
    on: date
    product: str | None
    category: str | None
    quantity: int
    channel: str | None
    ref: str | None
    note: str | None
    refund_of_ref: str | None = None
    refund_of_file_id: str | None = None
    file_id: str | None = None
    at_stored: Any = None  # ``at`` and ``on`` as the insert gives them (their stored text on SQLite)
    on_stored: Any = None


class PurchaseHandler(PlannedHandler):
    def __init__(self, session: Session, ctx: StoreContext, run_id: int, plan: Plan | None, options: Options) -> None:
        super().__init__(session, ctx, run_id, plan, options)
        self.next_id = next_id(session, P, "purchase")
        self.file_ids: dict[str, int] = {}  # the file's own id column → purchase id (links refunds in the file)
        self.keep_file_ids = plan is not None and "id" in plan.fields and "refund_of" in plan.fields
        # Each distinct amount and time is validated once per import (a shop's file repeats them a lot): bounded
        # caches of the valid ones that the handlers of all the import's steps share (an invalid value is
        # checked again, for its message).
        self._sale_amounts: dict[str, int] = shared_cache("amount", ctx.currency, True)
        self._refund_amounts: dict[str, int] = shared_cache("amount", ctx.currency, False)
        self._times: dict[str, tuple[datetime, date]] = shared_cache("purchased_at", ctx.today, ctx.tz,
                                                                      options.date_format)
        self.sqlite = session.get_bind().dialect.name == "sqlite"
        self._quick_times = options.date_format is None  # with --date-format the file's own form comes first

    def prepare(self, row: Row) -> Prepared:
        f = row.fields
        get = f.get
        key = lookups.customer_key(f, self.ctx.region)
        kind_raw = get("kind")
        kind = "sale" if kind_raw is None else KINDS.get(kind_raw.strip().lower())
        if kind is None:
            raise RowError("kind", kind_raw, _("'{value}' is not a kind.").format(value=kind_raw) + " " +
                           _("Use sale or refund."))
        raw_amount = get("amount")
        if raw_amount is None:
            raise RowError("amount", None, _("The amount is missing."))
        shown = raw_amount.strip()
        sale = kind == "sale"
        if not sale and shown.startswith("-"):
            shown = shown[1:]  # crmcli's own export writes refunds as negative amounts
        # Each distinct amount is validated once per import (the cache holds only valid ones).
        amount = (self._sale_amounts if sale else self._refund_amounts).get(shown)
        if amount is None:
            amount = self._amount(shown, sale)
            if isinstance(amount, CrmError):
                raise RowError.of(amount, "amount", raw_amount)
        raw_at = get("purchased_at")
        found = quick_when(raw_at, self.ctx) if self._quick_times and raw_at is not None else None
        at, on = found if found is not None else self._when(raw_at)
        raw_qty = get("quantity")
        quantity = 1
        if raw_qty is not None:
            if not raw_qty.strip().isdigit() or not 1 <= int(raw_qty) <= 1_000_000:
                raise RowError("quantity", raw_qty, _("Quantity {value} is out of range (1 to 1000000).").format(
                    value=raw_qty))
            quantity = int(raw_qty)
        texts = []
        for name, limit in _TEXTS:  # text() without its call where the value is plain (the common case)
            value = get(name)
            if value is not None:
                plain = value.strip()
                value = (plain or None) if plain.isprintable() and len(plain) <= limit else text(f, name, limit)
            texts.append(value)
        product, category, channel, ref, note, refund_of_ref = texts
        if self.sqlite:
            at_stored, on_stored = sqlite_datetime(at), sqlite_date(on)
        else:
            at_stored, on_stored = at, on
        prepared = Prepared(key, kind, amount, at, on, product, category, quantity, channel, ref, note, refund_of_ref,
                            get("refund_of"), get("id"), at_stored, on_stored)
        if not sale and not (refund_of_ref or (prepared.refund_of_file_id and self.keep_file_ids)):
            raise RowError("refund_of_ref", None, _("A refund row must name its sale.") + " " +
                           _("Give the sale's order ref in a refund_of_ref column."))
        return prepared

    def _amount(self, text: str, allow_zero: bool) -> int | CrmError:
        try:
            # A free sale is allowed (as in `purchase add`); a refund of nothing is not.
            found = parse_amount(text, self.ctx.currency, field="amount", allow_zero=allow_zero)
        except CrmError as e:
            return e
        cache = self._sale_amounts if allow_zero else self._refund_amounts
        if len(cache) > 100_000:
            cache.clear()
        cache[text] = found
        return found

    def _when(self, raw: str | None) -> tuple[datetime, date]:
        if raw is None:
            return when(raw, "purchased_at", self.ctx, self.options.date_format)
        found = self._times.get(raw)
        if found is None:
            found = when(raw, "purchased_at", self.ctx, self.options.date_format)
            if len(self._times) > 100_000:
                self._times.clear()
            self._times[raw] = found
        return found

    # ------------------------------------------------------------------------------------ the store
    def apply(self, batch: list[tuple[Row, Prepared]]) -> list[str | RowError]:
        resolver = lookups.Resolver(self.session)
        resolver.load([p.key for _r, p in batch])
        refs = [p.ref for _r, p in batch if p.ref] + [p.refund_of_ref for _r, p in batch if p.refund_of_ref]
        existing = self._by_ref(refs)
        outcomes: list[str | RowError] = []
        rows: list[tuple[Any, ...]] = []
        refunded: dict[int, int] = {}  # sale id → refunded so far (including this batch)
        now: Any = utcnow()
        if self.sqlite:
            now = sqlite_datetime(now)
        for row, p in batch:
            try:
                customer_id = resolver.resolve(p.key)
                if p.ref and p.ref in existing:
                    outcomes.append(self._same_order(existing[p.ref], customer_id, p))
                    continue
                refund_of = self._sale_of(p, customer_id, existing, refunded) if p.kind == "refund" else None
            except RowError as e:
                outcomes.append(e)
                continue
            pid = self.next_id
            self.next_id += 1
            rows.append((pid, customer_id, p.kind, refund_of, p.amount, p.at_stored, p.on_stored, p.product, p.category,
                         p.quantity, p.channel, p.ref, p.note, now, self.run_id))
            if p.ref:
                existing[p.ref] = _Pending(rows[-1], p.on)
            if self.keep_file_ids and p.file_id and p.kind == "sale" and not p.ref:
                # Only sales without a ref need this (the others are found by refund_of_ref): memory stays
                # small for a file of millions of orders.
                self.file_ids[p.file_id] = pid
            outcomes.append(Outcome.CREATED)
        if rows:
            insert_rows(self.session, P, COLUMNS, rows, ready=_STORED if self.sqlite else ())
            ids = [r[0] for r in rows]
            audit.record(self.session, **batch_audit("purchase", self.run_id, [{"id": i} for i in ids]))
            run_purchase_hooks(self.session, ids, self.ctx)
        return outcomes

    def _by_ref(self, refs: list[str]) -> dict[str, Any]:
        """{ref: the stored purchase (a mapping)}; values here and _Pending rows are read the same way."""
        out: dict[str, Any] = {}
        found = sorted(lookups.ids_by(self.session, "purchase", "ref", refs).values())  # usually none: new orders
        for part in lookups.unique_chunks(found):  # type: ignore[arg-type]
            for r in self.session.execute(select(P).where(P.c.id.in_(part))).mappings():
                out[r["ref"]] = dict(r)
        return out

    def _same_order(self, existing: Any, customer_id: int, p: Prepared) -> str:
        """The rule of `crm purchase add --ref`: the same order again is a no-op, another order is refused."""
        given = {"product": p.product, "category": p.category, "channel": p.channel}
        same = (existing["customer_id"] == customer_id and existing["amount_minor"] == p.amount
                and existing["kind"] == p.kind and existing["purchased_on"] == p.on
                and all(existing[k] == v for k, v in given.items() if v is not None))
        if same:
            return Outcome.UNCHANGED
        raise RowError("ref", p.ref, _("Order ref {ref} is already recorded (purchase #{id} on {date}, {amount}).").format(
            ref=p.ref, id=existing["id"], date=existing["purchased_on"],
            amount=format_money(existing["amount_minor"], self.ctx.currency)) + " " +
            _("Each ref is one order; correct the row or remove its ref."))

    def _sale_of(self, p: Prepared, customer_id: int, existing: dict[str, Any],
                 refunded: dict[int, int]) -> int:
        """The sale a refund row refers to, checked like `crm purchase refund` (same customer, not more than
        is left, not before the sale)."""
        sale: Any = None
        if p.refund_of_ref:
            sale = existing.get(p.refund_of_ref)
            field_name, raw = "refund_of_ref", p.refund_of_ref
        else:
            pid = self.file_ids.get(p.refund_of_file_id or "")
            field_name, raw = "refund_of", p.refund_of_file_id
            if pid is not None:
                found = self.session.execute(select(P).where(P.c.id == pid)).mappings().first()
                sale = dict(found) if found else None
        if sale is None or sale["kind"] != "sale":
            raise RowError(field_name, raw, _("No sale {ref} to refund.").format(ref=raw) + " " +
                           _("Import the sale first (an earlier row or an earlier import)."))
        if sale["customer_id"] != customer_id:
            raise RowError(field_name, raw, _("Sale {ref} belongs to another customer.").format(ref=raw))
        sid = int(sale["id"])
        if sid not in refunded:
            refunded[sid] = int(self.session.execute(select(func.coalesce(func.sum(P.c.amount_minor), 0)).where(
                P.c.refund_of_id == sid, P.c.kind == "refund")).scalar() or 0)
        left = int(sale["amount_minor"]) - refunded[sid]
        if p.amount > left:
            raise RowError("amount", money_str(p.amount, self.ctx.currency), _(
                "Refund {amount} is more than the {remaining} left to refund on sale {ref}.").format(
                amount=format_money(p.amount, self.ctx.currency), remaining=format_money(left, self.ctx.currency),
                ref=raw))
        if p.on < sale["purchased_on"]:
            raise RowError("purchased_at", str(p.on), _("The refund date {date} is before the sale ({purchased}).").format(
                date=p.on, purchased=sale["purchased_on"]))
        refunded[sid] += p.amount
        return sid
