"""Churn: churn_run, churn_risk, churn_fit, churn_score, churn_winback.
Frozen: later changes are new migrations, never edits here."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    # Stubs for the foreign keys' targets (created by m0001; create_all skips existing tables).
    sa.Table("customer", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("interaction", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "churn_run", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("params", sa.Text),
        sa.Column("counts", sa.Text),
    )
    sa.Table(
        "churn_risk", md,
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("risk", sa.String, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("churn_run.id"), nullable=False),
        sa.Index("ix_churn_risk_rank", "rank"),
        sa.Index("ix_churn_risk_run_id", "run_id"),
    )
    sa.Table(
        "churn_fit", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("calibration_end", sa.Date, nullable=False),
        sa.Column("period", sa.String, nullable=False),
        sa.Column("period_days", sa.Integer, nullable=False),
        sa.Column("n_customers", sa.Integer, nullable=False),
        sa.Column("r", sa.Float, nullable=False),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("a", sa.Float, nullable=False),
        sa.Column("b", sa.Float, nullable=False),
        sa.Column("log_likelihood", sa.Float, nullable=False),
        sa.Column("gg_customers", sa.Integer),
        sa.Column("p", sa.Float),
        sa.Column("q", sa.Float),
        sa.Column("gamma", sa.Float),
        sa.Column("gg_log_likelihood", sa.Float),
        sa.Column("currency", sa.String, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("churn_run.id"), nullable=False),
        sa.Index("ix_churn_fit_run_id", "run_id"),
    )
    sa.Table(
        "churn_score", md,
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("fit_id", sa.Integer, sa.ForeignKey("churn_fit.id"), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("frequency", sa.Integer, nullable=False),
        sa.Column("recency", sa.Float, nullable=False),
        sa.Column("age", sa.Float, nullable=False),
        sa.Column("monetary_minor", sa.BigInteger),
        sa.Column("p_alive", sa.Float, nullable=False),
        sa.Column("expected_purchases", sa.Float, nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("order_value_minor", sa.BigInteger),
        sa.Column("clv_minor", sa.BigInteger),
        sa.Column("clv_months", sa.Integer, nullable=False),
        sa.Index("ix_churn_score_fit_id", "fit_id"),
    )
    sa.Table(
        "churn_winback", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("churn_run.id"), nullable=False),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("risk", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("interaction_id", sa.Integer, sa.ForeignKey("interaction.id")),
        sa.Index("ix_churn_winback_run_id", "run_id"),
        sa.Index("ix_churn_winback_customer_on", "customer_id", "as_of"),
    )
    md.create_all(conn, checkfirst=True)
