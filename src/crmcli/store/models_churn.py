"""Tables of the churn feature (issue 7, docs/churn.md). The frozen DDL is crmcli.store.migrations.m0006_churn
(churn_score: m0016_churn_score_slim, m0018_churn_score_unbound); keep them identical.

- ``churn_risk``: the last `crm churn scan`: one row per customer with purchases (level and reasons as
  JSON with their figures; the text is rendered when shown, in the reader's language).
- ``churn_fit``: every `crm churn fit` (BG/NBD r, α, a, b; Gamma-Gamma p, q, γ in currency units; the
  log-likelihoods, data size, calibration end and period). The newest is the one `crm churn score` uses.
- ``churn_score``: the last `crm churn score`: P(alive), expected purchases in the horizon, expected order
  value and CLV per customer (the run's fit, as-of date, horizon and CLV months are in its churn_run row).
- ``churn_run``: one row per scan / fit / score / winback (when, as of which date, parameters, counts).
- ``churn_winback``: the follow-ups logged by `crm churn winback --log` (which interaction, which action),
  so that a second run does not log the same customer again.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

from crmcli.store import models as _base  # noqa: F401  (customer, interaction: the tables referenced here)
from crmcli.store.models import referrer_index


class ChurnRisk(SQLModel, table=True):
    __tablename__ = "churn_risk"
    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    risk: str  # none | low | medium | high
    rank: int = Field(index=True)  # 0 none, 1 low, 2 medium, 3 high
    reasons: str = Field(sa_column=Column(Text, nullable=False))  # JSON list, strongest first
    as_of: date
    run_id: int = Field(foreign_key="churn_run.id", index=True)


class ChurnFit(SQLModel, table=True):
    __tablename__ = "churn_fit"
    id: int | None = Field(default=None, primary_key=True)
    fitted_at: datetime
    calibration_end: date
    period: str  # day | week
    period_days: int
    n_customers: int
    r: float
    alpha: float  # per period
    a: float
    b: float
    log_likelihood: float
    gg_customers: int | None = None  # repeat buyers the Gamma-Gamma model was fitted on
    p: float | None = None
    q: float | None = None
    gamma: float | None = None  # in currency units
    gg_log_likelihood: float | None = None
    currency: str
    detail: str | None = Field(default=None, sa_column=Column(Text))  # JSON: standard errors, timings, notes
    run_id: int = Field(foreign_key="churn_run.id", index=True)


class ChurnScore(SQLModel, table=True):
    """Narrow on purpose (m0016): a score run writes a million of these; what is the same for every row (fit,
    as-of date, horizon, CLV months) is in the newest churn_run of kind 'score'."""

    __tablename__ = "churn_score"
    # No foreign key (m0018): a trigger on customer removes a customer's score with them.
    customer_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    p_alive: float
    expected_purchases: float  # in the horizon
    order_value_minor: int | None = Field(default=None, sa_column=Column(BigInteger))  # Gamma-Gamma E[M]
    clv_minor: int | None = Field(default=None, sa_column=Column(BigInteger))


class ChurnRun(SQLModel, table=True):
    __tablename__ = "churn_run"
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # scan | fit | score | winback
    as_of: date
    at: datetime
    actor: str
    params: str | None = Field(default=None, sa_column=Column(Text))  # JSON
    counts: str | None = Field(default=None, sa_column=Column(Text))  # JSON


class ChurnWinback(SQLModel, table=True):
    __tablename__ = "churn_winback"
    __table_args__ = (Index("ix_churn_winback_customer_on", "customer_id", "as_of"),
                      referrer_index("ix_churn_winback_interaction", "interaction_id"))
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="churn_run.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    as_of: date
    risk: str
    action: str  # call | message | coupon | complaint | survey
    channel: str
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id")


__all__ = ["ChurnRisk", "ChurnFit", "ChurnScore", "ChurnRun", "ChurnWinback"]
