"""What `crm tier recompute` and `crm tier rfm` keep between runs, so that a day-to-day run reads what changed
instead of the whole purchase history (issue #4; SQLite stores).

The cache (table ``class_cache``, one row) holds two parts, each valid on its own:

* **facts**: the per-customer rows of the history aggregate (classify._history_stmt: first and last sale,
  sale days, then sales and net spend per window) as of a date, over every purchase up to a watermark (the
  highest purchase id the run saw). Valid while ``class_cache_state.purchase_gen`` is what it was when they
  were computed: SQLite triggers raise it whenever a purchase is deleted or its customer, date, kind or amount
  changes (migration m0021). New purchases need no trigger: on SQLite a new row always gets an id above every
  row there is (the importer too takes the first free id under the write lock), so the purchases added since
  are those above the watermark.

  A later run brings them up to date by reading again only the customers whose facts can differ: those with a
  purchase above the watermark, and those with a purchase on a day whose side of a boundary moved with the
  as-of date (the history's end, each window's start). The facts of a customer depend on nothing else, so the
  other rows are kept as they are. When those customers are many (a far jump of the as-of date, a large
  import), the run reads the whole history as before.

* **stored**: the customer_class rows as the run left them (the codes classify.load_stored reads), aligned
  with the run's live customers. Valid while ``class_cache_state.class_gen`` is what it was right after the
  run's writes: the triggers raise it on every insert, update and delete of a customer_class row, whatever
  command does it (pins, an undone import, a raw write); a tier run takes them out for its own bulk write and
  raises it once, in the same transaction (``Writes.apply``; ``class_armed`` still switches them off).

* **live customers**: the ids of the customers neither deleted nor erased, kept with the stored part. Valid,
  plus the customers added since (ids above every id there was), while ``class_cache_state.customer_gen`` is
  unchanged: triggers raise it when a customer row is deleted or its ``deleted_at`` / ``erased_at`` change.

Either part out of date is simply not used (the run then reads the store, as without a cache). The cache is
written in the run's write transaction, and only while the counters are still what the run read: a change
committed by another process between the two phases leaves no stale cache behind.

CRM_CLASS_CACHE=off makes every run read the store in full; ``check`` uses the cache and also reads the store
in full, and stops with an AssertionError when they differ (the test suite runs so).

PostgreSQL: not used (its sequences hand out ids that may commit out of order, so "above the watermark" would
miss a purchase committed late); the tables exist, without triggers.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select, union
from sqlmodel import Session

from crmcli.store.models import Purchase
from crmcli.store.models_tiers import ClassCache, ClassCacheState

P = Purchase.__table__
CACHE = ClassCache.__table__
STATE = ClassCacheState.__table__
FORMAT = 1
ENV = "CRM_CLASS_CACHE"
MAX_SHIFT_DAYS = 62  # a longer move of the as-of date reads the whole history
DIRTY_SHARE = 0.10  # more customers than this share to read again: read the whole history
DIRTY_MIN = 1000
MAX_BYTES = 256 << 20  # a larger cache (about 8M customers) is not kept: SQLite's blob limit is 1 GB


def mode() -> str:
    value = os.environ.get(ENV, "on").strip().lower()
    return value if value in {"on", "off", "check"} else "on"


# ------------------------------------------------------------------------------------------ encoding

def encode(columns: dict[str, Any]) -> tuple[list[dict[str, Any]], bytes]:
    """Integer columns as the smallest integer type that holds each (a column of one repeated value as that
    value only): a million customers' facts take about 20 MB instead of 80."""
    import numpy as np

    specs, parts = [], []
    for name, values in columns.items():
        values = np.asarray(values, dtype=np.int64)
        spec: dict[str, Any] = {"name": name, "n": int(len(values))}
        if len(values) and int(values.min()) == int(values.max()):
            spec["const"] = int(values[0])
        elif len(values):
            lo, hi = int(values.min()), int(values.max())
            dtype = next(t for t in ("<i1", "<i2", "<i4", "<i8")
                         if np.iinfo(np.dtype(t)).min <= lo and hi <= np.iinfo(np.dtype(t)).max)
            spec["dtype"] = dtype
            parts.append(values.astype(dtype).tobytes())
        specs.append(spec)
    return specs, b"".join(parts)


def decode(specs: list[dict[str, Any]], data: bytes) -> dict[str, Any]:
    import numpy as np

    out, offset = {}, 0
    for spec in specs:
        n = spec["n"]
        if "const" in spec:
            out[spec["name"]] = np.full(n, spec["const"], dtype=np.int64)
        elif "dtype" in spec:
            dtype = np.dtype(spec["dtype"])
            out[spec["name"]] = np.frombuffer(data, dtype=dtype, count=n, offset=offset).astype(np.int64)
            offset += n * dtype.itemsize
        else:  # an empty column
            out[spec["name"]] = np.zeros(0, dtype=np.int64)
    if offset != len(data):
        raise ValueError("class_cache: the blob does not match its description")
    return out


# ------------------------------------------------------------------------------------------- keeper

@dataclass
class Keeper:
    """The cache as one run sees it: read in the run's read transaction, written by ``save`` in its write
    transaction. ``None`` from ``open_keeper`` when there is no cache to keep (PostgreSQL, CRM_CLASS_CACHE=off)."""

    mode: str
    purchase_gen: int
    class_gen: int
    watermark: int
    schema: str
    max_customer_id: int
    customer_gen: int
    meta: dict[str, Any] = field(default_factory=dict)  # of the cache row found (empty: none, or unusable)
    columns: dict[str, Any] = field(default_factory=dict)
    new_facts: tuple[dict[str, Any], dict[str, Any]] | None = None  # (meta, columns) to write
    new_stored: tuple[dict[str, Any], dict[str, Any]] | None = None
    reused: dict[str, str] = field(default_factory=dict)  # part -> how it was used (for tests and --debug)

    # ---------------------------------------------------------------------------------------- facts

    def history_rows(self, session: Session, as_of: date, windows: list[int],
                     compute: Callable[[Any], Any], *, full: bool = True) -> Any:
        """The history aggregate's rows (customer id first, ids ascending) as of ``as_of``: from the cache
        brought up to date when it can, else ``compute(None)`` (the whole history; with ``full=False`` None
        instead). ``compute(ids)`` reads the rows of those customers only. The result is remembered for
        ``save``."""
        import numpy as np

        rows = self._patched(session, as_of, windows, compute)
        if rows is None:
            if not full:
                return None
            rows = compute(None)
            self.reused["facts"] = "full"
        elif self.mode == "check":
            full = compute(None)
            if full.shape != rows.shape or not np.array_equal(full, rows):
                raise AssertionError(f"class_cache: facts as of {as_of} differ from a full pass "
                                     f"({_diff(full, rows)})")
        self.new_facts = ({"as_of": as_of.isoformat(), "windows": list(windows), "watermark": self.watermark,
                           "purchase_gen": self.purchase_gen, "width": int(rows.shape[1])},
                          {f"f{k}": rows[:, k] for k in range(rows.shape[1])})
        return rows

    def cached_windows(self) -> list[int] | None:
        facts = self.meta.get("facts")
        return list(facts["windows"]) if facts and facts["purchase_gen"] == self.purchase_gen else None

    def _patched(self, session: Session, as_of: date, windows: list[int], compute: Callable[[Any], Any]) -> Any:
        import numpy as np

        facts = self.meta.get("facts")
        if self.mode == "off" or not facts or facts["purchase_gen"] != self.purchase_gen \
                or list(facts["windows"]) != list(windows) or facts["watermark"] > self.watermark:
            return None
        rows = _matrix(self.columns, facts["width"], prefix="f")
        before = date.fromisoformat(facts["as_of"])
        lo, hi = sorted((before, as_of))
        if (hi - lo).days > MAX_SHIFT_DAYS:
            return None
        days: list[tuple[date, date]] = []
        if hi > lo:  # purchases on these days move across the history's end or a window's start
            days.append((lo + timedelta(days=1), hi))
            days += [(lo - timedelta(days=w - 1), hi - timedelta(days=w)) for w in windows]
        parts = [select(P.c.customer_id).where(P.c.id > facts["watermark"])]
        parts += [select(P.c.customer_id).where(P.c.purchased_on.between(a, b)) for a, b in days]
        dirty = np.fromiter((r[0] for r in session.execute(union(*parts) if len(parts) > 1 else parts[0].distinct())),
                            dtype=np.int64)
        if len(dirty) > max(DIRTY_MIN, DIRTY_SHARE * len(rows)):
            return None
        self.reused["facts"] = f"patched {len(dirty)}"
        if not len(dirty):
            return rows
        dirty.sort()
        fresh = compute(dirty)
        kept = rows[~np.isin(rows[:, 0], dirty)]
        merged = np.concatenate([kept, fresh]) if len(fresh) else kept
        return merged[np.argsort(merged[:, 0], kind="stable")]

    # ----------------------------------------------------------------------------------------- live

    def live_ids(self, read: Callable[[int | None], Any]) -> Any:
        """The live customers' ids, ascending: those the cache's stored part was written for, plus any added
        since (``read(above)``: the live ids above an id), while no customer was deleted, restored or erased
        since (``customer_gen``); else ``read(None)``, all of them."""
        import numpy as np

        part = self.meta.get("stored")
        if self.mode == "off" or not part or part.get("customer_gen") != self.customer_gen:
            return read(None)
        ids = np.concatenate([self.columns["s_ids"], read(int(part["max_customer_id"]))])
        if self.mode == "check":
            full = read(None)
            if not np.array_equal(full, ids):
                raise AssertionError(f"class_cache: live customers differ ({len(full)} in the store, {len(ids)} kept)")
        self.reused["live"] = "cache"
        return ids

    # --------------------------------------------------------------------------------------- stored

    def stored(self, ids: Any, level_names: list[str], defaults: dict[str, int]) -> dict[str, Any] | None:
        """The stored classification of ``ids`` (columns by name, aligned with ``ids``) when nothing changed
        customer_class since the cache was written. Customers added since (ids above every customer id there
        was then) have no row yet: ``defaults``. Any other customer the cache does not hold makes it unusable
        (e.g. one restored from the deleted)."""
        import numpy as np

        part = self.meta.get("stored")
        if self.mode == "off" or not part or part["class_gen"] != self.class_gen \
                or part["level_names"] != list(level_names):
            return None
        if any(f"s_{name}" not in self.columns for name in defaults):
            return None
        cached_ids = self.columns["s_ids"]
        if len(cached_ids) == len(ids) and np.array_equal(cached_ids, ids):
            self.reused["stored"] = "cache"
            return {k[2:]: v for k, v in self.columns.items() if k.startswith("s_") and k != "s_ids"}
        pos = np.minimum(np.searchsorted(cached_ids, ids), max(len(cached_ids) - 1, 0))
        held = (cached_ids[pos] == ids) if len(cached_ids) else np.zeros(len(ids), dtype=bool)
        if (ids[~held] <= part["max_customer_id"]).any():
            return None
        self.reused["stored"] = "cache"
        out = {}
        for name, default in defaults.items():
            column = np.full(len(ids), default, dtype=np.int64)
            column[held] = self.columns[f"s_{name}"][pos[held]]
            out[name] = column
        return out

    def remember_stored(self, ids: Any, level_names: list[str], columns: dict[str, Any]) -> None:
        """The customer_class rows as this run leaves them (written with the run's rows, see ``save``)."""
        self.new_stored = ({"level_names": list(level_names), "max_customer_id": self.max_customer_id,
                            "customer_gen": self.customer_gen},
                           {"s_ids": ids, **{f"s_{k}": v for k, v in columns.items()}})

    # ----------------------------------------------------------------------------------------- save

    def worth_saving(self) -> bool:
        """Whether a run that changes no customer should still write the cache (it read more than the
        cache gave)."""
        return self.reused.get("facts", "patched 0") != "patched 0" or (
            self.new_stored is not None and (self.reused.get("stored") != "cache" or self.reused.get("live") != "cache"))

    def customers_moved(self, session: Session) -> bool:
        """In the write phase: a customer was deleted, restored, erased or removed since the read phase."""
        return _state(session)[5] != self.customer_gen

    def save(self, session: Session, *, wrote: bool) -> None:
        """Write the cache in the run's write transaction (after its rows: ``wrote``). A part is written only
        while what it was computed from is unchanged since the read phase; the facts kept from an earlier run
        stay when this run computed none."""
        if self.mode == "off":
            return
        purchase_gen, class_gen, *_rest = _state(session)
        if purchase_gen != self.purchase_gen:
            return  # purchases were deleted or changed meanwhile: nothing computed here is sure
        meta: dict[str, Any] = {"format": FORMAT, "schema": self.schema}
        columns: dict[str, Any] = {}
        if self.new_facts is not None:
            meta["facts"], facts_cols = self.new_facts
            columns.update(facts_cols)
        elif self.meta.get("facts") and self.meta["facts"]["purchase_gen"] == purchase_gen:
            meta["facts"] = self.meta["facts"]
            columns.update({k: v for k, v in self.columns.items() if k.startswith("f")})
        # The stored part: customer_class as this run left it, valid at the counter after the run's writes;
        # only when nobody else changed customer_class between the two phases.
        if self.new_stored is not None and (wrote or class_gen == self.class_gen):
            meta["stored"] = {**self.new_stored[0], "class_gen": class_gen}
            columns.update(self.new_stored[1])
        if "facts" not in meta and "stored" not in meta:
            session.execute(CACHE.delete())
            return
        specs, data = encode(columns)
        meta["columns"] = specs
        meta["crc32"] = zlib.crc32(data)  # a damaged blob of the right length is not trusted either
        session.execute(CACHE.delete())
        if len(data) <= MAX_BYTES:
            session.execute(CACHE.insert().values(id=1, meta=json.dumps(meta), data=data))

    def mark_class_gen(self, session: Session) -> None:
        """Before the run's own writes: nobody else may have changed customer_class since the read phase,
        else the stored part is not written."""
        _p, class_gen, *_rest = _state(session)
        if class_gen != self.class_gen:
            self.new_stored = None


def open_keeper(session: Session) -> Keeper | None:
    """The cache as this run sees it (inside its read transaction); None on PostgreSQL or when turned off."""
    chosen = mode()
    if chosen == "off" or session.connection().dialect.name != "sqlite":
        return None
    purchase_gen, class_gen, watermark, schema, max_customer, customer_gen = _state(session)
    keeper = Keeper(chosen, purchase_gen, class_gen, watermark, schema, max_customer, customer_gen)
    row = session.execute(select(CACHE.c.meta, CACHE.c.data).where(CACHE.c.id == 1)).first()
    if row is not None:
        try:
            meta = json.loads(row[0])
            if isinstance(meta, dict) and meta.get("format") == FORMAT and meta.get("schema") == schema \
                    and meta.get("crc32") == zlib.crc32(row[1]):
                columns = decode(meta["columns"], row[1])
                _check_shape(meta, columns)
                keeper.columns, keeper.meta = columns, meta
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            pass  # unreadable (damaged, or written by other code): computed afresh and overwritten
    return keeper


def _check_shape(meta: dict[str, Any], columns: dict[str, Any]) -> None:
    """The parts the meta names have all their columns, of one length each (else ValueError)."""
    facts, stored = meta.get("facts"), meta.get("stored")
    if facts is not None:
        width = int(facts["width"])
        if width != 2 + 2 * len(facts["windows"]) or len({len(columns[f"f{k}"]) for k in range(width)}) != 1:
            raise ValueError("class_cache: facts columns")
        int(facts["purchase_gen"]), int(facts["watermark"]), date.fromisoformat(facts["as_of"])
    if stored is not None:
        lengths = {len(columns[name]) for name in columns if name.startswith("s_")}
        if "s_ids" not in columns or len(lengths) != 1 or not isinstance(stored["level_names"], list):
            raise ValueError("class_cache: stored columns")
        int(stored["class_gen"]), int(stored["max_customer_id"]), int(stored["customer_gen"])


def _state(session: Session) -> tuple[int, int, int, str, int, int]:
    """(purchase_gen, class_gen, highest purchase id, schema: the migrations applied, highest customer id,
    customer_gen)."""
    from sqlalchemy import text

    gens = session.execute(select(STATE.c.purchase_gen, STATE.c.class_gen, STATE.c.customer_gen)
                           .where(STATE.c.id == 1)).first()
    watermark = session.execute(select(func.coalesce(func.max(P.c.id), 0))).scalar_one()
    count, last = session.execute(text("SELECT count(*), max(name) FROM schema_migration")).one()
    customers = session.execute(text("SELECT coalesce(max(id), 0) FROM customer")).scalar_one()
    return int(gens[0]), int(gens[1]), int(watermark), f"{count}:{last}", int(customers), int(gens[2])


def _matrix(columns: dict[str, Any], width: int, prefix: str = "f") -> Any:
    import numpy as np

    return np.stack([columns[f"{prefix}{k}"] for k in range(width)], axis=1) if width else np.zeros((0, 0))


def _diff(a: Any, b: Any) -> str:
    import numpy as np

    if a.shape != b.shape:
        return f"{a.shape} rows vs {b.shape}"
    bad = np.nonzero((a != b).any(axis=1))[0][:3]
    return "; ".join(f"full {a[i].tolist()} cache {b[i].tolist()}" for i in bad)


__all__ = ["Keeper", "open_keeper", "mode", "encode", "decode"]
