"""SQLModel tables of satisfaction surveys and feedback (issue 6). Frozen DDL: migrations/m0005_feedback.py.

- survey / survey_question: the definitions (NPS, CSAT, CES or custom questions).
- survey_invite: one row per invited customer, with a unique response token; keeps people from being
  surveyed twice by accident.
- survey_response / survey_answer: a response (primary score and comment denormalised for results and the
  card) and its per-question answers.
- feedback / feedback_event: complaints, suggestions, praise and service requests with a deadline from
  feedback_policy; events are the item's thread (opened, assigned, notes, resolved, reopened, closed).

Timestamps are aware UTC; ``responded_on`` is the business date in the store's time zone.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from crmcli.store import models as _base  # noqa: F401  (customer, purchase: the tables referenced here)


class Survey(SQLModel, table=True):
    __tablename__ = "survey"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    kind: str  # nps | csat | ces | custom
    status: str = "open"  # open | closed
    message: str | None = Field(default=None, sa_column=Column(Text))  # invitation template
    link: str | None = None  # response URL template with {token}
    created_at: datetime
    closed_at: datetime | None = None


class SurveyQuestion(SQLModel, table=True):
    __tablename__ = "survey_question"
    __table_args__ = (UniqueConstraint("survey_id", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id", index=True)
    position: int
    kind: str  # nps | csat | ces | scale | choice | text
    text: str = Field(sa_column=Column(Text, nullable=False))
    scale_min: int | None = None
    scale_max: int | None = None
    choices: str | None = Field(default=None, sa_column=Column(Text))  # JSON list


class SurveyInvite(SQLModel, table=True):
    __tablename__ = "survey_invite"
    __table_args__ = (Index("ix_survey_invite_customer_at", "customer_id", "invited_at"),)
    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    token: str = Field(unique=True, index=True)
    channel: str  # email | sms | phone | wechat
    method: str  # csv | email
    status: str  # sent | pending | failed
    error: str | None = None
    invited_at: datetime
    purchase_id: int | None = Field(default=None, foreign_key="purchase.id", index=True)
    feedback_id: int | None = Field(default=None, index=True)  # the resolved item it measures (no FK: a cycle)


class SurveyResponse(SQLModel, table=True):
    __tablename__ = "survey_response"
    __table_args__ = (Index("ix_survey_response_survey_on", "survey_id", "responded_on"),
                      Index("ix_survey_response_customer_at", "customer_id", "responded_at"))
    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id")
    customer_id: int = Field(foreign_key="customer.id")
    invite_id: int | None = Field(default=None, foreign_key="survey_invite.id", unique=True)
    kind: str | None = None  # nps | csat | ces | scale: the type of ``score``
    score: int | None = None
    comment: str | None = Field(default=None, sa_column=Column(Text))
    channel: str | None = None
    source: str  # command | import
    responded_at: datetime
    responded_on: date
    created_at: datetime


class SurveyAnswer(SQLModel, table=True):
    __tablename__ = "survey_answer"
    response_id: int = Field(foreign_key="survey_response.id", primary_key=True)
    question_id: int = Field(foreign_key="survey_question.id", primary_key=True)
    score: int | None = None
    choice: str | None = None
    text: str | None = Field(default=None, sa_column=Column(Text))


class Feedback(SQLModel, table=True):
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_status_due", "status", "due_at"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    kind: str  # complaint | suggestion | praise | service
    priority: str  # low | normal | high | urgent
    channel: str | None = None
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: str = "open"  # open | resolved | closed
    assignee: str | None = None
    opened_at: datetime = Field(index=True)
    due_at: datetime | None = None
    missed: bool = False  # sticky: once a deadline is missed it stays missed
    resolved_at: datetime | None = None
    resolution: str | None = Field(default=None, sa_column=Column(Text))
    closed_at: datetime | None = None
    response_id: int | None = Field(default=None, foreign_key="survey_response.id", index=True)
    created_at: datetime
    updated_at: datetime


class FeedbackEvent(SQLModel, table=True):
    __tablename__ = "feedback_event"
    id: int | None = Field(default=None, primary_key=True)
    feedback_id: int = Field(foreign_key="feedback.id", index=True)
    at: datetime
    actor: str
    action: str  # open | assign | note | resolve | reopen | close
    text: str | None = Field(default=None, sa_column=Column(Text))


class FeedbackPolicy(SQLModel, table=True):
    __tablename__ = "feedback_policy"
    kind: str = Field(primary_key=True)
    priority: str = Field(primary_key=True)
    hours: int | None = None  # None: no deadline
    changed_at: datetime


__all__ = ["Survey", "SurveyQuestion", "SurveyInvite", "SurveyResponse", "SurveyAnswer", "Feedback",
           "FeedbackEvent", "FeedbackPolicy"]
