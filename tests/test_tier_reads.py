"""The bulk reads behind recompute and rfm (core/classify.int_rows): on SQLite each column comes back as one
group_concat text; the driver's tuples are the fallback when a text would pass SQLite's string limit."""

from __future__ import annotations

import sqlite3

import pytest

from test_tier_support import AS_OF, seed


def _facts(session, as_of, history):  # type: ignore[no-untyped-def]
    from crmcli.core import classify

    facts = classify.gather(session, as_of, [365, 90] if history else [90], history=history)
    return facts, classify.load_stored(session, facts.ids, [])


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    assert np.array_equal(a.ids, b.ids)
    for w in a.windows:
        assert all(np.array_equal(x, y) for x, y in zip(a.windows[w], b.windows[w]))
    for name in ("first", "last", "days"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y)


def test_text_columns_and_driver_tuples_read_the_same(cli):
    from sqlalchemy.exc import DBAPIError

    from crmcli.core import classify
    from crmcli.store.engine import open_store

    plan = {f"Customer {i}": [(d * 7 + i, str(100 * (i + 1) + d)) for d in range(i % 4)] for i in range(12)}
    seed(cli, plan)
    cli.ok("customer", "rm", "Customer 3", "--yes")
    cli.ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    store = open_store(str(cli.db))
    try:
        for history in (True, False):
            with store.read() as session:
                if session.connection().dialect.name != "sqlite":
                    pytest.skip("the text transport is SQLite's; PostgreSQL always reads the driver's tuples")
                normal, stored = _facts(session, AS_OF, history)
            assert len(normal.ids) == 11 and normal.windows[90][0].sum() > 0
            assert stored.found.all() and (stored.tier > 0).any()
            with store.read() as session:
                # SQLite's string limit below the length of one column's text: the tuples path takes over
                raw = session.connection().connection.dbapi_connection
                before = raw.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
                raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 40)
                try:
                    with pytest.raises(DBAPIError, match="too big"):  # the text way is really refused
                        classify._concat_rows(session.connection(), classify._window_stmt(AS_OF, 90), 3, True)
                    fallback, stored_fallback = _facts(session, AS_OF, history)
                finally:
                    raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, before)
            _same(normal, fallback)
            for field in ("found", "tier", "computed", "net", "orders", "r", "f", "m", "seg", "stage", "level",
                          "since", "basis"):
                assert (getattr(stored, field) == getattr(stored_fallback, field)).all(), field
    finally:
        store.dispose()
