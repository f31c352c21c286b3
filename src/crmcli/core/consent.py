"""The one consent rule for marketing messages (read by care through ``consenting``; surveys and win-back
lists apply the same rule in their own queries): opt-in per channel, a customer with no recorded answer has
not consented, and deleted or erased customers never receive anything."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlmodel import Session

from crmcli.store.models import Consent, Customer

CHANNELS = ("email", "sms", "phone", "wechat")


def consenting(session: Session, customer_ids: Sequence[int], channel: str) -> tuple[list[int], int]:
    """(the ids, in the given order, that granted consent for ``channel``; how many of the others there were)."""
    from crmcli.core.customers import chunked

    CON, C = Consent.__table__, Customer.__table__
    granted: set[int] = set()
    for part in chunked(list(customer_ids)):
        granted.update(int(i) for (i,) in session.execute(
            select(CON.c.customer_id).join(C, C.c.id == CON.c.customer_id)
            .where(CON.c.customer_id.in_(part), CON.c.channel == channel, CON.c.granted.is_(True),
                   C.c.deleted_at.is_(None), C.c.erased_at.is_(None))))
    allowed = [i for i in customer_ids if i in granted]
    return allowed, len(customer_ids) - len(allowed)
