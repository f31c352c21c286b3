"""The demo store: a small café's customers, built from the CSV files in examples/demo.

Purchase and interaction dates are given as 'days ago' so the demo always looks current.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from crmcli.core import customers, interactions, purchases
from crmcli.core.context import StoreContext


def data_dir() -> Path:
    """Bundled in the wheel as crmcli/_demo; in a source checkout, examples/demo."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_demo", here.parent.parent / "examples" / "demo"):
        if (candidate / "customers.csv").is_file():
            return candidate
    raise FileNotFoundError("demo data (examples/demo) is missing from this installation")


def _read(name: str) -> list[dict[str, str]]:
    with open(data_dir() / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# A loyalty programme and membership levels, so the demo card shows a tier, a level and a points balance.
DEMO_SETTINGS = {"points.enabled": "true", "points.rate": "1", "points.expiry": "year-end:12",
                 "points.birthday_bonus": "100"}
DEMO_LEVELS = (("silver", "500", "2", "1.2"), ("gold", "1500", "5", "1.5"))


def load(session: Session, ctx: StoreContext) -> dict[str, int]:
    counts = {"customers": 0, "purchases": 0, "interactions": 0}
    for row in _read("customers.csv"):
        data = customers.CustomerInput(
            name=row["name"], code=row["code"], gender=row["gender"] or None, birthday=row["birthday"] or None,
            city=row["city"] or None, occupation=row["occupation"] or None, source=row["source"] or None,
            phones=[row["phone"]] if row["phone"] else [], emails=[row["email"]] if row["email"] else [],
            socials=[row["social"]] if row["social"] else [],
            tags=[t for t in row["tags"].split(";") if t],
            preferences={"drink": row["preference"]} if row["preference"] else {},
            consent=dict(customers.parse_consent(c) for c in row["consent"].split(";") if c))
        customers.add_customer(session, data, ctx)
        counts["customers"] += 1
    for row in _read("purchases.csv"):
        customer = customers.resolve(session, row["customer"], ctx)
        day = ctx.today - timedelta(days=int(row["days_ago"]))
        purchases.add_purchase(session, customer, purchases.PurchaseInput(
            amount=row["amount"], at=f"{day.isoformat()} 10:30", product=row["product"], category=row["category"],
            channel=row["channel"], ref=row["ref"]), ctx)
        counts["purchases"] += 1
    for row in _read("interactions.csv"):
        customer = customers.resolve(session, row["customer"], ctx)
        day = ctx.today - timedelta(days=int(row["days_ago"]))
        interactions.log_interaction(session, customer, ctx, channel=row["channel"], summary=row["summary"],
                                     outcome=row["outcome"] or None, next_date=row["next"] or None,
                                     at=f"{day.isoformat()} 15:00")
        counts["interactions"] += 1
    # The demo's customers have been customers since their first purchase, not since the demo was built.
    from sqlalchemy import exists, func, select, update

    from crmcli.store.models import Customer, Purchase

    C, P = Customer.__table__, Purchase.__table__
    first = select(func.min(P.c.purchased_at)).where(P.c.customer_id == C.c.id).scalar_subquery()
    session.execute(update(C).where(exists().where(P.c.customer_id == C.c.id)).values(created_at=first))
    _loyalty(session, ctx)
    return counts


def _loyalty(session: Session, ctx: StoreContext) -> None:
    """Switch the programme on after the sales are in: one set-based backfill (the same points, each sale dated
    as it happened) is much quicker than earning sale by sale. Then classify everybody as of today."""
    from crmcli.core import classify, levels, settings
    from crmcli.core.points import earning

    for key, value in DEMO_SETTINGS.items():
        settings.set_value(session, key, value)
    for name, threshold, discount, multiplier in DEMO_LEVELS:
        levels.add_level(session, ctx, name=name, threshold=threshold, discount=discount, multiplier=multiplier)
    earning.backfill(session, ctx)
    classify.recompute(session, ctx)  # tiers, RFM segments, lifecycle stages and levels
