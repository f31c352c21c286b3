"""Batch lookups of live customers by code, phone (E.164) and e-mail (ignoring case): a few IN queries per
batch of rows instead of one query per row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from crmcli.core.contacts import normalize_email, normalize_phone
from crmcli.core.customers import CODE_PATTERN, C, chunked, parse_code
from crmcli.core.io.importer import RowError
from crmcli.errors import CrmError
from crmcli.i18n import _


def unique_chunks(values: Iterable[str], size: int = 900) -> list[list[str]]:
    """The distinct values, in lists short enough for one IN (...) on any SQLite build."""
    items = list(dict.fromkeys(values))
    return [items[i:i + size] for i in range(0, len(items), size)]


# The per-batch lookups go to the driver as plain SQL with one placeholder per value: Core's IN (even with an
# expanding parameter) names and renders every value of every batch, ~15% of a customer import's CPU time.
_LIVE_SQL = "c.deleted_at IS NULL AND c.erased_at IS NULL"


def _in(session: Session, select_from: str, probe: str, values: list[str], *, where: str = "",
        first: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``select_from`` (``SELECT ... FROM ...``) whose ``probe`` expression equals one of ``values``
    and that meet ``where`` (its placeholders, written ``{mark}``, take ``first``).

    SQLite gets ``probe IN (?, ?, ...)`` with one placeholder per value. PostgreSQL gets one index probe per
    value (``unnest`` of an array, joined LATERAL behind an ``OFFSET 0`` fence): given a long IN list, its
    planner prefers a sequential scan of the table while the table is small (below ~100,000 rows here), and
    that scan per batch made a customer import grow with the square of its size.
    """
    connection = session.connection()  # begins the session's transaction if need be
    text, params = _statement(connection.dialect, select_from, probe, values, where=where, first=first)
    # The DBAPI cursor of that same connection: its tuples as they come (a result row object per value found,
    # turned back into a tuple, cost more than the query on a big import).
    cursor = connection.connection.cursor()
    try:
        cursor.execute(text, params)
        return [tuple(r) for r in cursor.fetchall()]
    finally:
        cursor.close()


def _statement(dialect: Any, select_from: str, probe: str, values: list[str], *, where: str = "",
               first: tuple[Any, ...] = ()) -> tuple[str, tuple[Any, ...]]:
    condition = f"{where} AND " if where else ""
    if dialect.name == "postgresql":
        text = (f"SELECT found.* FROM unnest(%s::text[]) AS probe(value) CROSS JOIN LATERAL "
                f"({select_from} WHERE {condition.format(mark='%s')}{probe} = probe.value OFFSET 0) AS found")
        return text, (list(values), *first)
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    return (f"{select_from} WHERE {condition.format(mark=mark)}{probe} IN ({', '.join([mark] * len(values))})",
            (*first, *values))


def by_code(session: Session, codes: Iterable[str], *, live_only: bool = True) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in unique_chunks(codes):
        out.update((code, cid) for code, cid in _in(session, "SELECT c.code, c.id FROM customer c", "c.code", part,
                                                     where=_LIVE_SQL if live_only else ""))
    return out


def by_contact(session: Session, kind: str, values: Iterable[str]) -> dict[str, set[int]]:
    """{phone or lower-cased e-mail: ids of the live customers that have it}."""
    out: dict[str, set[int]] = {}
    probe = "cp.value"
    if kind == "email":  # callers pass lower-cased e-mails; each dialect's case-folding index serves this
        probe = "cp.value COLLATE NOCASE" if session.get_bind().dialect.name == "sqlite" else "lower(cp.value)"
    select_from = "SELECT cp.value, cp.customer_id FROM contact_point cp JOIN customer c ON c.id = cp.customer_id"
    for part in unique_chunks(values):
        for value, cid in _in(session, select_from, probe, part, where="cp.kind = {mark} AND " + _LIVE_SQL,
                              first=(kind,)):
            out.setdefault(value.lower() if kind == "email" else value, set()).add(cid)
    return out


def ids_by(session: Session, table: str, column: str, values: Iterable[str]) -> dict[str, int]:
    """{value: id} of the rows of ``table`` whose text ``column`` is one of ``values`` (e.g. purchases by ref)."""
    out: dict[str, int] = {}
    for part in unique_chunks(values):
        out.update((v, i) for v, i in _in(session, f'SELECT "{column}", id FROM "{table}"', f'"{column}"', part))
    return out


def deleted_codes(session: Session, codes: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for part in unique_chunks(codes):
        out.update(r[0] for r in session.execute(select(C.c.code).where(C.c.code.in_(part), C.c.deleted_at.is_not(None))))
    return out


@dataclass(slots=True)
class CustomerKey:
    """How a purchase/interaction row names its customer: code, phone or e-mail (the first given wins)."""

    field: str
    raw: str
    code: str | None = None
    phone: str | None = None
    email: str | None = None


def customer_key(fields: dict[str, Any], region: str | None) -> CustomerKey:
    """Validate the customer columns of a purchase or interaction row."""
    raw = fields.get("customer_code")
    if raw is not None:  # the common case, first of the loop below, without its detours
        code = raw.strip()
        if CODE_PATTERN.fullmatch(code):  # parse_code's check
            return CustomerKey("customer_code", raw, code)
    for name in ("customer_code", "customer_phone", "customer_email", "customer"):
        raw = fields.get(name)
        if raw is None:
            continue
        try:
            if name == "customer_code":
                return CustomerKey(name, raw, code=parse_code(raw))
            if name == "customer_phone":
                return CustomerKey(name, raw, phone=normalize_phone(raw, region, field=name))
            if name == "customer_email":
                return CustomerKey(name, raw, email=normalize_email(raw, field=name).lower())
        except CrmError as e:
            raise RowError.of(e, name, raw) from None
        key = CustomerKey(name, raw)
        text = raw.strip()
        if "@" in text:
            try:
                key.email = normalize_email(text).lower()
            except CrmError:
                pass
        else:
            try:
                key.code = parse_code(text)
            except CrmError:
                pass
            from crmcli.core.contacts import try_normalize_phone

            key.phone = try_normalize_phone(text, region)
        if not (key.code or key.phone or key.email):
            raise RowError(name, raw, _("'{value}' is neither a customer code, a phone nor an e-mail.").format(value=raw))
        return key
    raise RowError(None, None, _("The row does not name its customer.").format() + " " +
                   _("Add a customer_code, customer_phone or customer_email column (or map one with --map)."))


@dataclass
class Resolver:
    """Resolves a batch of CustomerKeys to customer ids with three IN queries."""

    session: Session
    codes: dict[str, int] = field(default_factory=dict)
    phones: dict[str, set[int]] = field(default_factory=dict)
    emails: dict[str, set[int]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)

    def load(self, keys: list[CustomerKey]) -> None:
        self.codes = by_code(self.session, [k.code for k in keys if k.code])
        self.phones = by_contact(self.session, "phone", [k.phone for k in keys if k.phone])
        self.emails = by_contact(self.session, "email", [k.email for k in keys if k.email])
        missing = [k.code for k in keys if k.code and k.code not in self.codes]
        self.gone = deleted_codes(self.session, missing) if missing else set()

    def resolve(self, key: CustomerKey) -> int:
        if key.code and key.code in self.codes:
            return self.codes[key.code]
        for found in (self.phones.get(key.phone or ""), self.emails.get(key.email or "")):
            if found:
                if len(found) > 1:
                    raise RowError(key.field, key.raw, _("'{value}' matches {n} customers; use the customer code.")
                                   .format(value=key.raw, n=len(found)))
                return next(iter(found))
        if key.code and key.code in self.gone:
            raise RowError(key.field, key.raw, _("Customer {code} is deleted.").format(code=key.code) + " " +
                           _("Bring it back with `crm customer restore {code}`.").format(code=key.code))
        raise RowError(key.field, key.raw, _("No customer matches '{ref}'.").format(ref=key.raw) + " " +
                       _("Import the customers first (crm import customers)."))


__all__ = ["by_code", "by_contact", "ids_by", "unique_chunks", "customer_key", "Resolver", "CustomerKey", "chunked"]
