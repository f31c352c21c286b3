"""Customer care tables: message templates, the holiday calendar and the record of greetings sent.

``care_send`` is what makes `crm care send` safe to run from cron: one row per customer and occasion
(``birthday:2025``, ``holiday:mid-autumn:2025-10-06``), unique, written in the same transaction as the
interaction it logs. The frozen DDL is crmcli.store.migrations.m0007_care.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from crmcli.store.models import referrer_index


class CareTemplate(SQLModel, table=True):
    """A message with placeholders ({name}, {tier}, {points}, {coupon}, ...). Built-in ones (birthday,
    holiday, winback) can be edited and reset, not removed."""

    __tablename__ = "care_template"
    name: str = Field(primary_key=True)
    kind: str  # birthday | holiday | winback | custom
    subject: str | None = None
    body: str = Field(sa_column=Column(Text, nullable=False))
    builtin: bool = False
    updated_at: datetime


class CareHoliday(SQLModel, table=True):
    """One date of a holiday. Lunar holidays (Spring Festival, Mid-Autumn) get one row per year;
    ``recurring`` rows repeat every year on the same month and day (the year of ``day`` is ignored)."""

    __tablename__ = "care_holiday"
    __table_args__ = (UniqueConstraint("name", "day", name="uq_care_holiday_name_day"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)  # a key such as spring-festival
    title: str
    day: date = Field(index=True)
    recurring: bool = False
    created_at: datetime


class CareSend(SQLModel, table=True):
    """A greeting rendered for one customer on one occasion (sent by e-mail or written to a CSV file)."""

    __tablename__ = "care_send"
    __table_args__ = (UniqueConstraint("customer_id", "occasion", name="uq_care_send_customer_occasion"),
                      Index("ix_care_send_occasion", "occasion"),
                      referrer_index("ix_care_send_interaction", "interaction_id"))
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    occasion: str  # birthday:YYYY | holiday:NAME:YYYY-MM-DD | winback:YYYY-MM
    kind: str  # birthday | holiday | winback
    template: str
    via: str  # csv | email
    channel: str  # the consent channel used: email | sms | wechat | phone
    sent_on: date  # business date of the run (the --as-of date)
    sent_at: datetime
    message: str | None = Field(default=None, sa_column=Column(Text))
    coupon: str | None = None
    points: int | None = None  # birthday points granted with this greeting
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id")


__all__ = ["CareTemplate", "CareHoliday", "CareSend"]
