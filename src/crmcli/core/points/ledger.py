"""The append-only points ledger: lots, debits with their allocations, debt, balances.

Invariants (checked by tests/test_points_machine.py after every step):
- balance = SUM(points) over a customer's rows, never negative; debt = SUM(debt), never negative;
- every debit's allocations add up to exactly its points, and no lot gives more than it holds;
- a redemption only uses lots that are unlocked and not expired on its date.

Order in which debits use lots (FEFO): soonest expiry first, then the oldest, then lots that never expire.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select
from sqlmodel import Session

from crmcli.core import audit
from crmcli.core.clock import utcnow
from crmcli.store.bulk import insert_rows
from crmcli.store.models_points import PointsAllocation, PointsLedger

L = PointsLedger.__table__
A = PointsAllocation.__table__

CREDIT_KINDS = ("earn", "adjust", "referral", "birthday", "restore")
DEBIT_KINDS = ("redeem", "expire", "reversal", "adjust", "repay")
KINDS = ("earn", "redeem", "expire", "reversal", "adjust", "referral", "birthday", "restore", "repay")
CHUNK = 500
_COLUMNS = ("customer_id", "kind", "points", "debt", "effective_on", "created_at", "expires_on", "spendable_on",
            "purchase_id", "ref_id", "reason", "actor", "detail", "key")


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass
class Lot:
    id: int
    customer_id: int
    kind: str
    points: int
    remaining: int
    effective_on: date
    expires_on: date | None
    spendable_on: date | None
    purchase_id: int | None

    def alive(self, day: date) -> bool:
        return self.expires_on is None or self.expires_on >= day

    def spendable(self, day: date) -> bool:
        return self.alive(day) and (self.spendable_on is None or self.spendable_on <= day)


def fefo_key(lot: Lot) -> tuple[Any, ...]:
    """Soonest-expiring first, then oldest, then lots without expiry (oldest first)."""
    return (lot.expires_on is None, lot.expires_on or date.max, lot.effective_on, lot.id)


def _used() -> Any:
    """Correlated: how many points of the outer lot row debits have taken so far."""
    return (select(func.coalesce(func.sum(A.c.points), 0)).where(A.c.lot_id == L.c.id)
            .correlate(L).scalar_subquery())


def lots(session: Session, customer_id: int, *, with_empty: bool = False) -> list[Lot]:
    """A customer's lots with what remains of each, in FEFO order."""
    used = _used()
    stmt = (select(L.c.id, L.c.customer_id, L.c.kind, L.c.points, (L.c.points - used).label("remaining"),
                   L.c.effective_on, L.c.expires_on, L.c.spendable_on, L.c.purchase_id)
            .where(L.c.customer_id == customer_id, L.c.points > 0))
    if not with_empty:
        stmt = stmt.where(L.c.points - used > 0)
    found = [Lot(**row) for row in session.execute(stmt).mappings()]
    return sorted(found, key=fefo_key)


def take(candidates: Iterable[Lot], wanted: int) -> tuple[list[tuple[Lot, int]], int]:
    """Use up to ``wanted`` points from ``candidates`` in their order; returns (allocations, shortfall)."""
    allocations: list[tuple[Lot, int]] = []
    left = wanted
    for lot in candidates:
        if left <= 0:
            break
        n = min(lot.remaining, left)
        if n > 0:
            allocations.append((lot, n))
            lot.remaining -= n
            left -= n
    return allocations, left


def balance(session: Session, customer_id: int) -> tuple[int, int]:
    """(points balance, debt) = the sums of the customer's ledger."""
    row = session.execute(select(func.coalesce(func.sum(L.c.points), 0), func.coalesce(func.sum(L.c.debt), 0))
                          .where(L.c.customer_id == customer_id)).one()
    return int(row[0]), int(row[1])


def debts(session: Session, customer_ids: Sequence[int]) -> dict[int, int]:
    """{customer_id: debt} for those of ``customer_ids`` that owe points."""
    out: dict[int, int] = {}
    ids = sorted(set(customer_ids))
    if len(ids) > CHUNK:
        # Many customers (an import, a backfill): one pass over the ledger's debt rows costs less than a
        # grouped query per few hundred customers.
        owing = select(L.c.customer_id).where(L.c.debt != 0)
        stmt = (select(L.c.customer_id, func.sum(L.c.debt)).where(L.c.customer_id.in_(owing))
                .group_by(L.c.customer_id).having(func.sum(L.c.debt) > 0))
        wanted = set(ids)
        return {int(c): int(d) for c, d in session.execute(stmt) if int(c) in wanted}
    for part in chunks(ids):
        stmt = (select(L.c.customer_id, func.sum(L.c.debt)).where(L.c.customer_id.in_(list(part)))
                .group_by(L.c.customer_id).having(func.sum(L.c.debt) > 0))
        out.update({int(c): int(d) for c, d in session.execute(stmt)})
    return out


def existing_keys(session: Session, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(list(keys)):
        found.update(k for (k,) in session.execute(select(L.c.key).where(L.c.key.in_(list(part)))))
    return found


def append(session: Session, rows: list[dict[str, Any]], *, allocations: list[list[tuple[int, int]]] | None = None,
           audit_action: str | None = None) -> list[int]:
    """Insert ledger rows (one executemany) and their allocations; audit each; return the new ids in order.

    ``allocations[i]`` lists (lot_id, points) that row i takes (debits only; they must add up to -points).
    """
    if not rows:
        return []
    now = utcnow()
    who = audit.actor()
    full = []
    for row in rows:
        detail = row.get("detail")
        full.append({"customer_id": row["customer_id"], "kind": row["kind"], "points": int(row["points"]),
                     "debt": int(row.get("debt", 0)), "effective_on": row["effective_on"], "created_at": now,
                     "expires_on": row.get("expires_on"), "spendable_on": row.get("spendable_on"),
                     "purchase_id": row.get("purchase_id"), "ref_id": row.get("ref_id"),
                     "reason": row.get("reason"), "actor": who,
                     "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail is not None else None,
                     "key": row.get("key")})
    if len(full) == 1:
        ids = [int(session.execute(insert(L).returning(L.c.id), full).scalar_one())]
    else:
        ids = _insert_keyed(session, full)
    alloc_rows: list[tuple[int, int, int]] = []
    for i, (debit_id, row) in enumerate(zip(ids, full)):
        allocs = allocations[i] if allocations else []
        # A debit's allocations add up to exactly its points; a credit (a lot) has none.
        assert sum(n for _lot, n in allocs) == max(-row["points"], 0) and (row["points"] <= 0 or not allocs), row
        alloc_rows.extend((debit_id, lot_id, n) for lot_id, n in allocs if n > 0)
    insert_rows(session, A, ("debit_id", "lot_id", "points"), alloc_rows)
    entries = []
    for i, (new_id, row) in enumerate(zip(ids, full)):
        after = {k: row[k] for k in ("kind", "points", "debt", "effective_on", "expires_on", "spendable_on",
                                     "purchase_id", "ref_id", "reason", "key")}
        if allocations and allocations[i]:
            after["lots"] = {str(lot_id): n for lot_id, n in allocations[i]}
        entries.append({"entity": "points_ledger", "entity_id": new_id, "customer_id": row["customer_id"],
                        "action": audit_action or row["kind"], "after": after})
    audit.record_many(session, entries)
    return ids


def _insert_keyed(session: Session, full: list[dict[str, Any]]) -> list[int]:
    return insert_keyed(session, _COLUMNS, [tuple(row[c] for c in _COLUMNS) for row in full],
                        key_index=_COLUMNS.index("key"))


def insert_keyed(session: Session, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], *,
                 key_index: int) -> list[int]:
    """Insert several ledger rows (tuples of ``columns``) with one executemany; their new ids, in order.

    Every bulk row has its own unique key (``row[key_index]``), which maps the new ids back to the rows. The
    store's write lock is held, so the rows above the highest id before the insert are this transaction's
    own: one range query finds them (a key lookup covers any id a database handed out below that mark).
    """
    keys = [row[key_index] for row in rows]
    assert None not in keys and len(set(keys)) == len(keys), "bulk ledger rows need unique keys"
    mark = int(session.execute(select(func.coalesce(func.max(L.c.id), 0))).scalar_one())
    insert_rows(session, L, columns, rows)
    by_key = {key: int(i) for i, key in session.execute(select(L.c.id, L.c.key).where(L.c.id > mark))}
    missing = [key for key in keys if key not in by_key]
    for part in chunks(missing):
        by_key.update({key: int(i) for i, key in session.execute(select(L.c.id, L.c.key).where(L.c.key.in_(list(part))))})
    return [by_key[key] for key in keys]


def debit(session: Session, customer_id: int, kind: str, allocations: list[tuple[Lot, int]], effective_on: date, *,
          debt: int = 0, **fields: Any) -> int:
    """One debit row taking ``allocations`` (its points are minus their sum)."""
    points = -sum(n for _lot, n in allocations)
    row = {"customer_id": customer_id, "kind": kind, "points": points, "debt": debt, "effective_on": effective_on,
           **fields}
    return append(session, [row], allocations=[[(lot.id, n) for lot, n in allocations]])[0]


def credit_rows(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert credits (lots), then let them repay the debt of customers who owe points (documented policy:
    any new points repay an outstanding debt first, oldest debt first, from the new lot)."""
    rows = [r for r in rows if int(r["points"]) > 0]
    ids = append(session, rows)
    owed = debts(session, [r["customer_id"] for r in rows]) if rows else {}
    if owed:
        repay: list[dict[str, Any]] = []
        allocs: list[list[tuple[int, int]]] = []
        for new_id, row in zip(ids, rows):
            left = owed.get(row["customer_id"], 0)
            if left <= 0:
                continue
            n = min(left, int(row["points"]))
            owed[row["customer_id"]] = left - n
            repay.append({"customer_id": row["customer_id"], "kind": "repay", "points": -n, "debt": -n,
                          "effective_on": row["effective_on"], "ref_id": new_id, "key": f"repay:{new_id}",
                          "reason": row.get("reason")})
            allocs.append([(new_id, n)])
        append(session, repay, allocations=allocs)
    return ids


@dataclass
class Summary:
    balance: int
    debt: int
    spendable: int
    locked: int
    overdue: int  # expired but not yet removed by `crm points expire`
    expiries: list[tuple[date, int]]  # all upcoming (date, points), soonest first
    unlocks: list[tuple[date, int]]  # when locked points become spendable

    @property
    def next_expiry(self) -> tuple[date, int] | None:
        return self.expiries[0] if self.expiries else None

    def as_dict(self) -> dict[str, Any]:
        nxt = self.next_expiry
        return {"balance": self.balance, "spendable": self.spendable, "locked": self.locked, "debt": self.debt,
                "overdue": self.overdue,
                "next_expiry": {"date": nxt[0].isoformat(), "points": nxt[1]} if nxt else None,
                "expiries": [{"date": d.isoformat(), "points": n} for d, n in self.expiries],
                "unlocks": [{"date": d.isoformat(), "points": n} for d, n in self.unlocks]}


def summarize(found: Sequence[Lot], day: date, *, debt: int = 0) -> Summary:
    spendable = locked = overdue = 0
    expiries: dict[date, int] = {}
    unlocks: dict[date, int] = {}
    for lot in found:
        if lot.remaining <= 0:
            continue
        if not lot.alive(day):
            overdue += lot.remaining
            continue
        if lot.spendable(day):
            spendable += lot.remaining
        else:
            locked += lot.remaining
            assert lot.spendable_on is not None
            unlocks[lot.spendable_on] = unlocks.get(lot.spendable_on, 0) + lot.remaining
        if lot.expires_on is not None:
            expiries[lot.expires_on] = expiries.get(lot.expires_on, 0) + lot.remaining
    return Summary(balance=spendable + locked + overdue, debt=debt, spendable=spendable, locked=locked,
                   overdue=overdue, expiries=sorted(expiries.items()), unlocks=sorted(unlocks.items()))


def summary(session: Session, customer_id: int, day: date) -> Summary:
    found = lots(session, customer_id)
    total, debt = balance(session, customer_id)
    result = summarize(found, day, debt=debt)
    assert result.balance == total, (result.balance, total)  # sum of lots == sum of ledger
    return result


def has_rows(session: Session, customer_id: int) -> bool:
    return session.execute(select(L.c.id).where(L.c.customer_id == customer_id).limit(1)).first() is not None


def alive_condition(day: date) -> Any:
    return or_(L.c.expires_on.is_(None), L.c.expires_on >= day)


def remaining_at(day: date) -> Any:
    """Correlated: what remains of the outer lot after the debits effective on or before ``day``."""
    D = L.alias("d")
    used = (select(func.coalesce(func.sum(A.c.points), 0)).select_from(A.join(D, D.c.id == A.c.debit_id))
            .where(A.c.lot_id == L.c.id, D.c.effective_on <= day).correlate(L).scalar_subquery())
    return L.c.points - used


__all__ = ["Lot", "Summary", "lots", "take", "balance", "debts", "append", "debit", "credit_rows", "summary",
           "summarize", "fefo_key", "existing_keys", "has_rows", "alive_condition", "remaining_at", "and_", "case"]
