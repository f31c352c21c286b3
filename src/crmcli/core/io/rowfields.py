"""What the purchase and interaction importers share: the handler's set-up and column naming, and the checks of
one row's time and text columns (the parsers of `crm purchase add` and `crm customer log`)."""

from __future__ import annotations

import gc
import re
import weakref
from datetime import date, datetime, timezone
from typing import Any

from sqlmodel import Session

from crmcli.core.clock import local_to_utc, utc_to_local
from crmcli.core.context import StoreContext
from crmcli.core.customers import clean_text
from crmcli.core.dates import _DMY, _fail, parse_datetime
from crmcli.core.io.importer import Options, RowError
from crmcli.core.io.mapping import Plan
from crmcli.core.purchases import _when
from crmcli.errors import CrmError
from crmcli.i18n import _


_holders = 0
_thresholds: tuple[int, ...] = ()
# While an import runs, the collector's youngest generation is examined every 50,000 new container objects
# instead of every 700: an import makes several per row (row dicts, tuples, lists) that reference counting
# frees, and the frequent collections (promoting the batch's live rows into older generations that full
# collections then walk again and again) cost ~9% of a purchase import's CPU time. Cycles are still found.
IMPORT_GC_THRESHOLD = 50_000
# SQLite's page cache of an importing connection, in KiB (the default is 2 MB). A bulk insert into a table with
# several indexes touches index pages all over the file; with the default cache most of those touches are
# reads through the operating system again (measured: 500,000 purchases, 100 -> 67 CPU s with 100 MB; the
# floor of the benchmark, 40 -> 22 s). Bounded, so peak memory stays well under 300 MB whatever the file.
IMPORT_PAGE_CACHE_KIB = 96 * 1024


def _hold_collector() -> None:
    global _holders, _thresholds
    if _holders == 0:
        gc.freeze()
        _thresholds = gc.get_threshold()
        gc.set_threshold(max(IMPORT_GC_THRESHOLD, _thresholds[0]), *_thresholds[1:])
    _holders += 1


def _release_collector() -> None:
    global _holders
    _holders -= 1
    if _holders == 0:
        gc.set_threshold(*_thresholds)
        gc.unfreeze()


class PlannedHandler:
    """The part of a record kind's handler that only knows the file's column plan."""

    def __init__(self, session: Session, ctx: StoreContext, run_id: int, plan: Plan | None, options: Options) -> None:
        self.session, self.ctx, self.run_id, self.plan, self.options = session, ctx, run_id, plan, options
        # The objects alive now (modules, SQLAlchemy's and the validators' tables) stay alive for the whole
        # import: out of the collector's sight, its full collections no longer walk them again and again
        # (measured: ~20% of an import's CPU time at 30,000 customers). New garbage is still collected, and
        # when the import is over (no handler left: a stepped import makes one per step) everything is handed
        # back to the collector (and its usual thresholds).
        _hold_collector()
        weakref.finalize(self, _release_collector)
        if session.get_bind().dialect.name == "sqlite":
            # Per connection, kept across the import's steps (SQLite keeps a WAL connection's cache between its
            # own transactions); the pooled connection keeps it afterwards, which a one-command process does not
            # notice.
            session.connection().exec_driver_sql(f"PRAGMA cache_size = -{IMPORT_PAGE_CACHE_KIB}")

    def column_of(self, field_name: str | None) -> str | None:
        """The file's header for a field (messages and --rejects name the column the user knows)."""
        if field_name is None or self.plan is None:
            return field_name
        return self.plan.column_of(field_name) or field_name


_shared: dict[tuple[Any, ...], dict[Any, Any]] = {}


def shared_cache(*key: Any) -> dict[Any, Any]:
    """A value cache that outlives one step's handler (an import makes a new handler for each step, about every
    second, which would otherwise start from empty caches again and again). ``key`` names what is cached and
    everything the cached answers depend on (the store's today, --date-format ...); callers bound the size."""
    found = _shared.get(key)
    if found is None:
        if len(_shared) > 32:
            _shared.clear()
        found = _shared[key] = {}
    return found


_ISO_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?")


def quick_when(raw: str, ctx: StoreContext) -> tuple[datetime, date] | None:
    """``when`` for the form shop exports write ('2024-03-01 14:30' or with seconds, local time) without
    --date-format: the same two calls the full path makes for it (datetime.fromisoformat, then the zone
    conversion), without its detours. None: anything else, including what is invalid or in the future, which
    ``when`` then answers (with its message). Tests check it against ``when`` on random text."""
    if not _ISO_LOCAL.fullmatch(raw):
        return None
    tz = ctx.tz
    try:
        local = datetime.fromisoformat(raw)
        # local.replace(tzinfo=tz) (no fraction of a second here, fold 0), without replace's keyword parsing
        at = datetime(local.year, local.month, local.day, local.hour, local.minute, local.second, 0,
                      tz).astimezone(timezone.utc)
        on = at.astimezone(tz).date()
    except (ValueError, OverflowError):
        return None
    if on > ctx.today:
        return None
    return at, on


def when(raw: str | None, field_name: str, ctx: StoreContext, date_format: str | None) -> tuple[datetime, date]:
    """A required time column → (UTC time, business date), through the same parsers as `--at`; with
    --date-format the file's form first, then the unambiguous ones (as for customers' dates)."""
    if raw is None:
        raise RowError(field_name, None, _("The {field} is missing.").format(field=field_name) + " " +
                       _("Every imported row needs its date (a missing one would be recorded as today)."))
    try:
        if date_format is not None:
            try:
                local = parse_datetime(raw, today=ctx.today, field=field_name, date_format=date_format)
                try:
                    at = local_to_utc(local, ctx.tz)
                    on = utc_to_local(at, ctx.tz).date()
                except OverflowError:  # like _when: before the first or after the last representable moment
                    raise _fail(raw, field_name, _("out of range")) from None
                if on > ctx.today:
                    raise RowError(field_name, raw, _("{field} {value} is in the future.").format(
                        field=field_name, value=raw))
                return at, on
            except CrmError as e:
                try:
                    return _when(raw, ctx, field_name)
                except CrmError as plain:
                    raise (e if _DMY.match(raw.strip().split(" ")[0]) else plain) from None
        return _when(raw, ctx, field_name)
    except CrmError as e:
        error = RowError.of(e, field_name, raw)
        if date_format is None and _DMY.match(raw.strip().split(" ")[0]):
            error.reason += " " + _("Or give the file's order with --date-format, e.g. --date-format %d/%m/%Y.")
        raise error from None


def text(fields: dict[str, Any], name: str, max_len: int) -> str | None:
    """An optional text column, cleaned like the commands clean it (None when empty)."""
    raw = fields.get(name)
    if raw is None:
        return None
    value = raw.strip()
    if value.isprintable() and len(value) <= max_len:  # no control character at all: clean_text's answer
        return value or None
    try:
        return clean_text(raw, name, max_len=max_len) or None
    except CrmError as e:
        raise RowError.of(e, name, raw) from None
