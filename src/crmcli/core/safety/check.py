"""`crm db check`: the file's integrity, its foreign keys and the audit chain, each with a verdict."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from crmcli.core import audit
from crmcli.i18n import _
from crmcli.store.engine import Store


@dataclass(frozen=True)
class Check:
    name: str  # integrity | foreign_keys | audit | encryption
    ok: bool
    detail: str


def integrity(session: Session) -> Check:
    rows = [str(r[0]) for r in session.connection().exec_driver_sql("PRAGMA integrity_check").fetchall()]
    if rows == ["ok"]:
        return Check("integrity", True, _("ok"))
    return Check("integrity", False, "; ".join(rows[:5]) + (" …" if len(rows) > 5 else ""))


def foreign_keys(session: Session) -> Check:
    rows = session.connection().exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if not rows:
        return Check("foreign_keys", True, _("ok"))
    shown = [_("{table} row {rowid} points to a missing {parent}").format(table=r[0], rowid=r[1], parent=r[2])
             for r in rows[:5]]
    return Check("foreign_keys", False, _("{n} broken references: {list}").format(
        n=len(rows), list="; ".join(shown) + (" …" if len(rows) > 5 else "")))


def audit_chain(session: Session) -> Check:
    broken = audit.verify(session)
    count, last = audit.head(session)
    if broken is None:
        return Check("audit", True, _("{n} rows intact, head {hash}").format(n=count, hash=last[:16]))
    return Check("audit", False, _("broken at audit row #{id} (changed, deleted or inserted outside crm)")
                 .format(id=broken))


def encryption(session: Session, store: Store) -> Check:
    if store.key is None:
        return Check("encryption", True, _("not encrypted"))
    rows = session.connection().exec_driver_sql("PRAGMA cipher_integrity_check").fetchall()
    if not rows:
        return Check("encryption", True, _("encrypted, every page authenticated"))
    return Check("encryption", False, "; ".join(str(r[0]) for r in rows[:5]))


def run(store: Store) -> list[Check]:
    with store.read() as session:
        if not store.is_sqlite:  # a server database checks its own pages
            return [audit_chain(session)]
        return [integrity(session), foreign_keys(session), audit_chain(session), encryption(session, store)]
