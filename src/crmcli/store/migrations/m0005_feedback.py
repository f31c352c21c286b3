"""Surveys (definitions, questions, invitations, responses, answers) and feedback (items, their thread and
the response-deadline policy, seeded with the documented defaults). Frozen: later changes are new migrations."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# Response deadline in hours per (kind, priority); docs/surveys.md lists the same table.
DEFAULT_POLICY = {
    ("complaint", "urgent"): 4, ("complaint", "high"): 24, ("complaint", "normal"): 48, ("complaint", "low"): 72,
    ("service", "urgent"): 8, ("service", "high"): 24, ("service", "normal"): 72, ("service", "low"): 120,
    ("suggestion", "urgent"): 24, ("suggestion", "high"): 72, ("suggestion", "normal"): 168,
    ("suggestion", "low"): 336,
    ("praise", "urgent"): 24, ("praise", "high"): 48, ("praise", "normal"): 72, ("praise", "low"): 168,
}


def upgrade(conn: Connection) -> None:
    md = sa.MetaData()
    # Stand-ins for the referenced base tables (already created by m0001; not created again here).
    base = [sa.Table(name, md, sa.Column("id", sa.Integer, primary_key=True)) for name in ("customer", "purchase")]
    sa.Table(
        "survey", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("link", sa.String),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Index("ix_survey_name", "name", unique=True),
    )
    sa.Table(
        "survey_question", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("survey_id", sa.Integer, sa.ForeignKey("survey.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("scale_min", sa.Integer),
        sa.Column("scale_max", sa.Integer),
        sa.Column("choices", sa.Text),
        sa.UniqueConstraint("survey_id", "position"),
        sa.Index("ix_survey_question_survey_id", "survey_id"),
    )
    sa.Table(
        "survey_invite", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("survey_id", sa.Integer, sa.ForeignKey("survey.id"), nullable=False),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("token", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("method", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("error", sa.String),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purchase_id", sa.Integer, sa.ForeignKey("purchase.id")),
        sa.Column("feedback_id", sa.Integer),
        sa.Index("ix_survey_invite_survey_id", "survey_id"),
        sa.Index("ix_survey_invite_token", "token", unique=True),
        sa.Index("ix_survey_invite_customer_at", "customer_id", "invited_at"),
        sa.Index("ix_survey_invite_purchase_id", "purchase_id"),
        sa.Index("ix_survey_invite_feedback_id", "feedback_id"),
    )
    sa.Table(
        "survey_response", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("survey_id", sa.Integer, sa.ForeignKey("survey.id"), nullable=False),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("invite_id", sa.Integer, sa.ForeignKey("survey_invite.id")),
        sa.Column("kind", sa.String),
        sa.Column("score", sa.Integer),
        sa.Column("comment", sa.Text),
        sa.Column("channel", sa.String),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_on", sa.Date, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("invite_id"),
        sa.Index("ix_survey_response_survey_on", "survey_id", "responded_on"),
        sa.Index("ix_survey_response_customer_at", "customer_id", "responded_at"),
    )
    sa.Table(
        "survey_answer", md,
        sa.Column("response_id", sa.Integer, sa.ForeignKey("survey_response.id"), primary_key=True),
        sa.Column("question_id", sa.Integer, sa.ForeignKey("survey_question.id"), primary_key=True),
        sa.Column("score", sa.Integer),
        sa.Column("choice", sa.String),
        sa.Column("text", sa.Text),
    )
    sa.Table(
        "feedback", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("priority", sa.String, nullable=False),
        sa.Column("channel", sa.String),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("assignee", sa.String),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("missed", sa.Boolean, nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution", sa.Text),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("response_id", sa.Integer, sa.ForeignKey("survey_response.id")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_feedback_customer_id", "customer_id"),
        sa.Index("ix_feedback_opened_at", "opened_at"),
        sa.Index("ix_feedback_response_id", "response_id"),
        sa.Index("ix_feedback_status_due", "status", "due_at"),
    )
    sa.Table(
        "feedback_event", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("feedback_id", sa.Integer, sa.ForeignKey("feedback.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("text", sa.Text),
        sa.Index("ix_feedback_event_feedback_id", "feedback_id"),
    )
    policy = sa.Table(
        "feedback_policy", md,
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("priority", sa.String, primary_key=True),
        sa.Column("hours", sa.Integer),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    md.create_all(conn, tables=[t for t in md.sorted_tables if t not in base])
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    conn.execute(sa.insert(policy), [{"kind": k, "priority": p, "hours": h, "changed_at": now}
                                     for (k, p), h in DEFAULT_POLICY.items()])
