"""Portable SQL pieces for date-based analytics: each has a SQLite and a PostgreSQL form.

Reports group on ``purchase.purchased_on`` (the business date in the store's time zone), in SQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

BYS = ("day", "week", "month", "quarter")


class period_start(FunctionElement):  # noqa: N801 - reads like a SQL function
    """The first day of the day/week (ISO, Monday)/month/quarter that contains a date column."""

    type = sa.Date()
    inherit_cache = True
    name = "period_start"
    # ``by`` changes the SQL, so it is part of the statement cache key.
    _traverse_internals = [*FunctionElement._traverse_internals, ("by", InternalTraversal.dp_string)]

    def __init__(self, column: Any, by: str) -> None:
        if by not in BYS:
            raise ValueError(by)
        self.by = by
        super().__init__(column)


@compiles(period_start)
def _period_start_default(element: period_start, compiler: Any, **kw: Any) -> str:  # PostgreSQL and others
    (arg,) = list(element.clauses)
    col = compiler.process(arg, **kw)
    if element.by == "day":
        return col
    return f"CAST(date_trunc('{element.by}', {col}) AS DATE)"


@compiles(period_start, "sqlite")
def _period_start_sqlite(element: period_start, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    col = compiler.process(arg, **kw)
    if element.by == "day":
        return f"date({col})"
    if element.by == "week":  # forward to Sunday (same day if Sunday), back 6 days: the ISO Monday
        return f"date({col}, 'weekday 0', '-6 days')"
    if element.by == "month":
        return f"date({col}, 'start of month')"
    return (f"date({col}, 'start of month', '-' || ((CAST(strftime('%m', {col}) AS INTEGER) - 1) % 3) "
            f"|| ' months')")


class days_between(FunctionElement):  # noqa: N801
    """Whole days from the first date to the second (second - first)."""

    type = sa.Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_between_default(element: days_between, compiler: Any, **kw: Any) -> str:
    first, second = list(element.clauses)
    return f"({compiler.process(second, **kw)} - {compiler.process(first, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    first, second = list(element.clauses)
    return (f"CAST(julianday({compiler.process(second, **kw)}) - julianday({compiler.process(first, **kw)}) "
            f"AS INTEGER)")


def period_index(column: Any, by: str) -> Any:
    """A running period number (months or quarters since year 0): differences count periods."""
    year = sa.cast(sa.extract("year", column), sa.Integer)
    month = sa.cast(sa.extract("month", column), sa.Integer)
    if by == "month":
        return year * 12 + month - 1
    if by == "quarter":
        return year * 4 + (month - 1) // 3
    raise ValueError(by)
