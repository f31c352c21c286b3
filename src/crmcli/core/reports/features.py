"""Sections of reports that come from other features (tiers, points, surveys, feedback, churn), each read
through that feature's own core functions, and only when the feature is installed in this build.
A missing feature leaves its section out (never a made-up figure)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from crmcli.core.context import StoreContext
from crmcli.core.reports.periods import Range


def dashboard_sections(session: Session, ctx: StoreContext, rng: Range) -> dict[str, Any]:
    return {}
