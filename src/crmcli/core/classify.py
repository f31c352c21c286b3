"""The bulk engine behind `crm tier recompute` and `crm tier rfm`.

1. SQL aggregates, GROUP BY customer over the purchases (on the business date ``purchased_on``; refunds
   count against spend on their own date), streamed over the covering index ``ix_purchase_class``:
   - the sales history: purchase days, first and last sale (lifecycle, tenure, recency);
   - per window: number of sales and net spend (tiers, RFM, levels).
   They return integers only (dates as days since 1970-01-01), fetched straight into numpy arrays.
2. The rules run vectorized over those arrays (crmcli.core.tiers / rfm / lifecycle / levels).
3. The result is compared with the stored classification (read back as integer codes); only rows that
   differ are written (executemany on the driver cursor, inside the command's transaction), each tier or
   level change gets a history row, and one ``class_run`` row plus one audit row describe the run. A run
   that changes nothing writes nothing: a second run with the same as-of date leaves the store unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Integer, case, distinct, func, insert, literal, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session

from crmcli.core import tiers as tiers_mod
from crmcli.core.levels import NO_DATE, epoch_day, from_epoch_day
from crmcli.core.lifecycle import STAGE_KEYS
from crmcli.core.rfm import SEGMENT_KEYS, TOP_SEGMENTS
from crmcli.core.tiers import CC, CODE_TIERS, HIST, PIN, TIER_CODES, Rules
from crmcli.errors import Conflict
from crmcli.i18n import _
from crmcli.store.models import Customer, Purchase

P = Purchase.__table__
C = Customer.__table__
NONE_INT = -(2**62)  # "no value" in integer arrays
BATCH = 50_000


class epoch_days(FunctionElement):  # type: ignore[type-arg]
    """Days since 1970-01-01 of a DATE expression, as an integer (SQLite and PostgreSQL twins)."""

    type = Integer()
    inherit_cache = True
    name = "epoch_days"


@compiles(epoch_days, "sqlite")
def _epoch_days_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"CAST(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5 AS INTEGER)"


@compiles(epoch_days)
def _epoch_days_default(element: Any, compiler: Any, **kw: Any) -> str:  # PostgreSQL: date - date = integer days
    return f"(({compiler.process(element.clauses, **kw)}) - DATE '1970-01-01')"


def _indexed(stmt: Any) -> Any:
    """Let SQLite stream the GROUP BY customer over the covering index (its planner prefers the date index
    for a date range, which means a temporary B-tree over all the matching rows: several times slower)."""
    return stmt.with_hint(P, "INDEXED BY ix_purchase_class", "sqlite")


def int_rows(session: Session, stmt: Any, width: int) -> Any:
    """Execute ``stmt`` (integer columns, no NULLs) and return an (n, width) int64 numpy array."""
    import numpy as np

    result = session.execute(stmt)
    raw = result.cursor.fetchall()  # the driver's tuples: no per-row SQLAlchemy processing
    result.close()
    return np.array(raw, dtype=np.int64).reshape(-1, width) if raw else np.zeros((0, width), dtype=np.int64)


def _align(ids: Any, rows: Any, defaults: list[int]) -> list[Any]:
    """Columns 1.. of ``rows`` (column 0 = customer id) aligned with ``ids``; ``defaults`` where missing."""
    import numpy as np

    n = len(ids)
    out = [np.full(n, d, dtype=np.int64) for d in defaults]
    if len(rows) == 0 or n == 0:
        return out
    keys = rows[:, 0]
    if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
        order = np.argsort(keys, kind="stable")
        rows, keys = rows[order], keys[order]
    pos = np.searchsorted(keys, ids)
    pos_c = np.minimum(pos, len(keys) - 1)
    found = keys[pos_c] == ids
    src = pos_c[found]
    for k in range(len(defaults)):
        out[k][found] = rows[src, k + 1]
    return out


@dataclass
class Facts:
    """Per live customer (ids ascending), as numpy arrays."""

    ids: Any
    windows: dict[int, tuple[Any, Any]]  # window days -> (sales count, net spend)
    first: Any  # epoch day of the first sale (NO_DATE if none)
    last: Any  # epoch day of the last sale
    days: Any  # number of purchase days


def live_ids(session: Session) -> Any:
    stmt = select(C.c.id).where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None)).order_by(C.c.id)
    return int_rows(session, stmt, 1)[:, 0]


def _window_stmt(as_of: date, days: int, *, with_last: bool) -> Any:
    sale = P.c.kind == "sale"
    cols: list[Any] = [P.c.customer_id, func.sum(case((sale, 1), else_=0)),
                       func.sum(case((sale, P.c.amount_minor), else_=-P.c.amount_minor))]
    if with_last:
        cols.append(func.coalesce(epoch_days(func.max(case((sale, P.c.purchased_on), else_=None))), NO_DATE))
    start = as_of - timedelta(days=days - 1)
    return _indexed(select(*cols).where(P.c.purchased_on >= start, P.c.purchased_on <= as_of)
                    .group_by(P.c.customer_id))


def gather(session: Session, as_of: date, windows: list[int], *, history: bool) -> Facts:
    """The SQL aggregates. ``history``: the sales history too (recompute); without it only the purchases of
    the one window are read, and ``last`` is the last sale in that window (rfm)."""
    import numpy as np

    ids = live_ids(session)
    result: dict[int, tuple[Any, Any]] = {}
    first = last = days = None
    if history:
        stmt = _indexed(select(P.c.customer_id, func.count(distinct(P.c.purchased_on)),
                               epoch_days(func.min(P.c.purchased_on)), epoch_days(func.max(P.c.purchased_on)))
                        .where(P.c.kind == "sale", P.c.purchased_on <= as_of).group_by(P.c.customer_id))
        days, first, last = _align(ids, int_rows(session, stmt, 4), [0, NO_DATE, NO_DATE])
        for w in sorted(set(windows)):
            orders, net = _align(ids, int_rows(session, _window_stmt(as_of, w, with_last=False), 3), [0, 0])
            result[w] = (orders, net)
    else:
        (w,) = set(windows)
        orders, net, last = _align(ids, int_rows(session, _window_stmt(as_of, w, with_last=True), 4),
                                   [0, 0, NO_DATE])
        result[w] = (orders, net)
    return Facts(ids=ids if len(ids) else np.zeros(0, dtype=np.int64), windows=result, first=first, last=last,
                 days=days)


# ------------------------------------------------------------------------------------ stored state

@dataclass
class Stored:
    found: Any  # bool: a customer_class row exists
    tier: Any
    computed: Any
    net: Any
    orders: Any
    r: Any
    f: Any
    m: Any
    seg: Any
    stage: Any
    level: Any  # rank: 0 none, -1 a level that no longer exists
    since: Any
    basis: Any


def _code(column: Any, keys: Any, *, start: int = 0, none: int = -1, unknown: int = -1) -> Any:
    return case((column.is_(None), none), *[(column == k, i + start) for i, k in enumerate(keys)], else_=unknown)


def load_stored(session: Session, ids: Any, level_names: list[str]) -> Stored:
    """The stored classification of ``ids`` as integer codes (read in SQL: one row of integers per customer)."""
    import numpy as np

    tier_code = case((CC.c.tier == "A", 3), (CC.c.tier == "B", 2), (CC.c.tier == "C", 1), else_=0)
    computed_code = case((CC.c.computed_tier == "A", 3), (CC.c.computed_tier == "B", 2),
                         (CC.c.computed_tier == "C", 1), else_=0)
    stmt = select(CC.c.customer_id, literal(1), tier_code, computed_code, CC.c.net_minor, CC.c.orders,
                  func.coalesce(CC.c.r_score, 0), func.coalesce(CC.c.f_score, 0), func.coalesce(CC.c.m_score, 0),
                  _code(CC.c.segment, SEGMENT_KEYS), _code(CC.c.stage, STAGE_KEYS),
                  _code(CC.c.level, level_names, start=1, none=0, unknown=-1),
                  func.coalesce(epoch_days(CC.c.level_since), NO_DATE), func.coalesce(CC.c.basis_minor, NONE_INT))
    cols = _align(ids, int_rows(session, stmt, 14), [0, 0, 0, 0, 0, 0, 0, 0, -1, -1, 0, NO_DATE, NONE_INT])
    found = cols[0].astype(bool)
    return Stored(found, *cols[1:])


def stored_level_names(session: Session, customer_ids: list[int]) -> dict[int, str]:
    """Names of levels held by these customers (for history rows of levels that were removed)."""
    out: dict[int, str] = {}
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start:start + 500]
        out.update({r[0]: r[1] for r in session.execute(select(CC.c.customer_id, CC.c.level)
                                                        .where(CC.c.customer_id.in_(chunk)))})
    return out


def load_pins(session: Session, ids: Any) -> Any:
    import numpy as np

    rows = session.execute(select(PIN.c.customer_id, PIN.c.tier)).all()
    coded = np.array([(r[0], TIER_CODES.get(r[1], 0)) for r in rows], dtype=np.int64).reshape(-1, 2)
    return _align(ids, coded, [0])[0]


# --------------------------------------------------------------------------------------------- RFM

def score_rfm(last: Any, orders: Any, net: Any) -> tuple[Any, Any, Any, Any]:
    """R, F, M scores (0 for customers without a sale in the window) and segment codes (-1 for them)."""
    import numpy as np

    from crmcli.core.rfm import quintile_scores, segment_codes

    n = len(orders)
    scored = np.asarray(orders) > 0
    r = np.zeros(n, dtype=np.int64)
    f = np.zeros(n, dtype=np.int64)
    m = np.zeros(n, dtype=np.int64)
    seg = np.full(n, -1, dtype=np.int64)
    if scored.any():
        r[scored] = quintile_scores(np.asarray(last)[scored])
        f[scored] = quintile_scores(np.asarray(orders)[scored])
        m[scored] = quintile_scores(np.asarray(net)[scored])
        seg[scored] = segment_codes(r[scored], f[scored], m[scored])
    return r, f, m, seg


def segment_rows(seg: Any, recency: Any, orders: Any, net: Any) -> list[dict[str, Any]]:
    import numpy as np

    total_n = len(seg)
    scored = seg >= 0
    revenue_all = int(np.maximum(net[scored], 0).sum()) if total_n else 0
    k = len(SEGMENT_KEYS)
    counts = np.bincount(seg[scored], minlength=k)
    revenue = np.zeros(k, dtype=np.int64)  # exact integer sums (bincount weights would be floats)
    np.add.at(revenue, seg[scored], net[scored])
    rec = np.zeros(k, dtype=np.int64)
    np.add.at(rec, seg[scored], recency[scored])
    freq = np.zeros(k, dtype=np.int64)
    np.add.at(freq, seg[scored], orders[scored])
    out = []
    for code, key in enumerate(SEGMENT_KEYS):
        count = int(counts[code])
        rev = int(revenue[code])
        out.append({"segment": key, "customers": count, "customer_share": tiers_mod._pct(count, total_n),
                    "revenue_minor": rev, "revenue_share": tiers_mod._pct(max(rev, 0), revenue_all),
                    "average_minor": round(rev / count) if count else 0,
                    "recency_days": round(float(rec[code]) / count, 1) if count else None,
                    "frequency": round(float(freq[code]) / count, 2) if count else None})
    unscored = int(total_n - scored.sum())
    if unscored:
        out.append({"segment": None, "customers": unscored, "customer_share": tiers_mod._pct(unscored, total_n),
                    "revenue_minor": int(net[~scored].sum()), "revenue_share": None, "average_minor": None,
                    "recency_days": None, "frequency": None})
    return out


# ------------------------------------------------------------------------------------------ writing

def _driver_date(session: Session) -> Any:
    """Dates as the driver wants them: ISO text for SQLite (what SQLAlchemy stores), date objects elsewhere."""
    if session.get_bind().dialect.name == "sqlite":
        return lambda d: None if d is None else d.isoformat()
    return lambda d: d


def executemany(session: Session, stmt: Any, keys: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Bulk write with the driver's executemany (values already in driver form, in ``keys`` order), inside
    the session's transaction; the statement is compiled for the store's dialect."""
    if not rows:
        return
    conn = session.connection()
    compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
    index = {k: i for i, k in enumerate(keys)}
    names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
    if [n.removeprefix("_") for n in names] != keys:  # different order: re-map (rare)
        order = [index[n.removeprefix("_")] for n in names]
        rows = [tuple(r[i] for i in order) for r in rows]
    sql = str(compiled)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            cursor.executemany(sql, chunk if compiled.positional else [dict(zip(names, r)) for r in chunk])
    finally:
        cursor.close()


def write_rows(session: Session, ids: Any, found: Any, changed: Any, values: dict[str, list[Any]]) -> None:
    """Update the changed existing rows, insert the missing ones."""
    import numpy as np
    from sqlalchemy import bindparam

    keys = list(values)
    columns = [values[k] for k in keys]
    upd = np.nonzero(changed & found)[0].tolist()
    ins = np.nonzero(changed & ~found)[0].tolist()
    id_list = ids.tolist()
    if upd:
        stmt = update(CC).where(CC.c.customer_id == bindparam("_customer_id")).values(
            {k: bindparam("_" + k) for k in keys})
        executemany(session, stmt, [*keys, "customer_id"],
                    [tuple(col[i] for col in columns) + (id_list[i],) for i in upd])
    if ins:
        extra = [k for k in ("net_minor", "orders") if k not in values]  # NOT NULL columns rfm does not set
        executemany(session, insert(CC), ["customer_id", *keys, *extra],
                    [(id_list[i], *(col[i] for col in columns), *([0] * len(extra))) for i in ins])


def _py(values: Any, mapping: Any = None, none: int | None = None) -> list[Any]:
    items = values.tolist()
    if mapping is not None:
        return [mapping[v] for v in items]
    if none is not None:
        return [None if v == none else v for v in items]
    return items


@dataclass
class Moves:
    up: int = 0
    down: int = 0
    new: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"up": self.up, "down": self.down, "new": self.new}


def _moves(new: Any, old: Any) -> Moves:
    import numpy as np

    return Moves(up=int(np.count_nonzero((new > old) & (old > 0))), down=int(np.count_nonzero(new < old)),
                 new=int(np.count_nonzero((old <= 0) & (new > 0))))


@dataclass
class RunResult:
    kind: str
    as_of: date
    rules: Rules
    customers: int
    changed_rows: int
    tier: Moves = field(default_factory=Moves)
    level: Moves = field(default_factory=Moves)
    tiers: dict[str, int] = field(default_factory=dict)  # A/B/C/none -> customers after the run
    segments: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # only when asked for
    scores: Any = None  # rfm: (ids, r, f, m, seg, recency, orders, net) for --customers
    run_id: int | None = None
    dry_run: bool = False


def _finish_run(session: Session, kind: str, as_of: date, rules: Rules, counts: dict[str, Any]) -> int:
    from crmcli.core import audit

    run_id = tiers_mod._new_run(session, kind, as_of, rules.params(), counts)
    audit.record(session, entity="class_run", entity_id=run_id, action=kind, after={"as_of": as_of, **counts})
    return run_id


# ---------------------------------------------------------------------------------------- recompute

def recompute(session: Session, ctx: Any, *, dry_run: bool = False, want_changes: bool = False) -> RunResult:
    """Tiers, RFM segments, lifecycle stages and membership levels for every live customer as of ctx.today."""
    import numpy as np

    from crmcli.core import hooks, levels as levels_mod
    from crmcli.core.lifecycle import stage_codes

    rules = tiers_mod.load_rules(session)
    rules.validate()
    as_of = ctx.today
    today = epoch_day(as_of)
    defined = levels_mod.list_levels(session)
    for lvl in defined:
        if lvl.basis != rules.level_basis:
            raise Conflict(_("Level {name} was defined by {basis} but level.basis is {current}.").format(
                name=lvl.name, basis=_(lvl.basis), current=_(rules.level_basis)),
                hint=_("Set level.basis back, or redefine the levels."))
    windows = [rules.tiers.window_days, rules.rfm_window]
    if defined and rules.level_basis == "spend":
        windows.append(rules.level_window)
    facts = gather(session, as_of, windows, history=True)
    ids = facts.ids
    n = len(ids)
    bought = facts.days > 0
    orders_t, net_t = facts.windows[rules.tiers.window_days]
    tenure = np.where(bought, today - facts.first, -1)
    computed, share = tiers_mod.tier_codes(net_t, orders_t, tenure, bought, rules.tiers, ctx.currency)
    computed = computed.astype(np.int64)
    pins = load_pins(session, ids)
    effective = np.where(pins > 0, pins, computed)

    orders_r, net_r = facts.windows[rules.rfm_window]
    r, f, m, seg = score_rfm(facts.last, orders_r, net_r)
    top = (effective == TIER_CODES["A"]) | np.isin(seg, [SEGMENT_KEYS.index(k) for k in TOP_SEGMENTS])
    stage = stage_codes(facts.days, facts.first, facts.last, today, top, rules.lifecycle).astype(np.int64)

    names = [lvl.name for lvl in defined]
    stored = load_stored(session, ids, names)
    if defined:
        if rules.level_basis == "spend":
            basis = facts.windows[rules.level_window][1]
        else:
            basis = points_earned(session, hooks, ids, as_of, rules.level_window)
        level, since = levels_mod.assign(basis, stored.level, stored.since, today, [lv.threshold for lv in defined],
                                         rules.downgrade_days)
    else:
        basis = np.full(n, NONE_INT, dtype=np.int64)
        level = np.zeros(n, dtype=np.int64)
        since = np.full(n, NO_DATE, dtype=np.int64)

    changed = (~stored.found | (effective != stored.tier) | (computed != stored.computed) | (net_t != stored.net)
               | (orders_t != stored.orders) | (r != stored.r) | (f != stored.f) | (m != stored.m)
               | (seg != stored.seg) | (stage != stored.stage) | (level != stored.level) | (since != stored.since)
               | (basis != stored.basis))
    tier_changed = effective != stored.tier
    level_changed = level != stored.level
    result = RunResult(kind="recompute", as_of=as_of, rules=rules, customers=n, changed_rows=int(changed.sum()),
                       tier=_moves(effective, stored.tier), level=_moves(level, np.maximum(stored.level, 0)),
                       dry_run=dry_run)
    counts = np.bincount(effective, minlength=4)
    result.tiers = {"A": int(counts[3]), "B": int(counts[2]), "C": int(counts[1]), "none": int(counts[0])}
    level_label: list[Any] = [None, *names]
    gone = np.nonzero(level_changed & (stored.level < 0))[0]
    old_names = stored_level_names(session, ids[gone].tolist()) if len(gone) else {}

    def level_from(i: int) -> Any:
        code = int(stored.level[i])
        return old_names.get(int(ids[i])) if code < 0 else level_label[code]

    if want_changes:
        for i in np.nonzero(tier_changed | level_changed)[0].tolist():
            common = {"customer_id": int(ids[i]), "net_minor": int(net_t[i]), "orders": int(orders_t[i])}
            if tier_changed[i]:
                result.changes.append({**common, "kind": "tier", "from": CODE_TIERS[stored.tier[i]],
                                       "to": CODE_TIERS[effective[i]]})
            if level_changed[i]:
                result.changes.append({**common, "kind": "level", "from": level_from(i),
                                       "to": level_label[level[i]]})
    if dry_run or not changed.any():
        return result

    seg_label = [*SEGMENT_KEYS, None]  # index -1 -> None
    stage_label = [*STAGE_KEYS, None]
    to_date = _driver_date(session)
    values = {
        "tier": _py(effective, CODE_TIERS), "computed_tier": _py(computed, CODE_TIERS), "net_minor": _py(net_t),
        "orders": _py(orders_t), "r_score": _py(r, none=0), "f_score": _py(f, none=0), "m_score": _py(m, none=0),
        "segment": _py(seg, seg_label), "stage": _py(stage, stage_label), "level": _py(level, level_label),
        "level_since": [to_date(from_epoch_day(d)) for d in since.tolist()] if defined else [None] * n,
        "basis_minor": _py(basis, none=NONE_INT),
    }
    run_counts = {"customers": n, "changed": result.changed_rows, "tier": result.tier.as_dict(),
                  "level": result.level.as_dict(), "tiers": result.tiers}
    run_id = _finish_run(session, "recompute", as_of, rules, run_counts)
    result.run_id = run_id
    write_rows(session, ids, stored.found, changed, values)

    keys = ["run_id", "customer_id", "kind", "from_value", "to_value", "net_minor", "orders", "tenure_days",
            "share_bp", "basis_minor", "note"]
    idx = np.nonzero(tier_changed)[0]
    if len(idx):
        shares = (share[idx] if share is not None else np.full(len(idx), NONE_INT))
        shares = np.where(net_t[idx] > 0, shares, NONE_INT)
        executemany(session, insert(HIST), keys, list(zip(
            [run_id] * len(idx), ids[idx].tolist(), ["tier"] * len(idx), _py(stored.tier[idx], CODE_TIERS),
            _py(effective[idx], CODE_TIERS), net_t[idx].tolist(), orders_t[idx].tolist(),
            _py(tenure[idx], none=-1), _py(shares, none=NONE_INT), [None] * len(idx),
            ["pinned" if p else None for p in (pins[idx] > 0).tolist()])))
    idx = np.nonzero(level_changed)[0]
    if len(idx):
        executemany(session, insert(HIST), keys, list(zip(
            [run_id] * len(idx), ids[idx].tolist(), ["level"] * len(idx), [level_from(i) for i in idx.tolist()],
            _py(level[idx], level_label), net_t[idx].tolist(), orders_t[idx].tolist(), _py(tenure[idx], none=-1),
            [None] * len(idx), _py(basis[idx], none=NONE_INT), [None] * len(idx))))
    return result


def points_earned(session: Session, hooks: Any, ids: Any, as_of: date, window: int) -> Any:
    """Points earned per customer in the level window, from the points feature (hooks.POINTS_EARNED)."""
    import numpy as np

    spec = getattr(hooks, "POINTS_EARNED", None)
    if not spec:
        raise Conflict(_("Membership levels by points need the points feature, which is not available."),
                       hint=_("Use levels by spend: crm tier rules set --level-basis spend (after removing the levels)."))
    start = as_of - timedelta(days=window - 1)
    rows = session.execute(hooks.load(spec)(session, start, as_of)).all()
    coded = np.array([(int(r[0]), int(r[1] or 0)) for r in rows], dtype=np.int64).reshape(-1, 2)
    return _align(ids, coded, [0])[0]


# ---------------------------------------------------------------------------------------------- rfm

def rfm(session: Session, ctx: Any, *, window_days: int | None = None, dry_run: bool = False,
        want_scores: bool = False) -> RunResult:
    """Score every live customer with a sale in the window and save R, F, M and the segment (and the
    loyal/repeat stage that depends on the segment). Other stages change only with a recompute."""
    import numpy as np

    rules = tiers_mod.load_rules(session)
    window = window_days or rules.rfm_window
    as_of = ctx.today
    today = epoch_day(as_of)
    facts = gather(session, as_of, [window], history=False)
    ids = facts.ids
    n = len(ids)
    orders, net = facts.windows[window]
    r, f, m, seg = score_rfm(facts.last, orders, net)
    stmt = select(CC.c.customer_id, literal(1),
                  case((CC.c.tier == "A", 1), else_=0),
                  func.coalesce(CC.c.r_score, 0) * 100 + func.coalesce(CC.c.f_score, 0) * 10
                  + func.coalesce(CC.c.m_score, 0),
                  _code(CC.c.segment, SEGMENT_KEYS), _code(CC.c.stage, STAGE_KEYS))
    found, tier_a, old_rfm, old_seg, old_stage = _align(ids, int_rows(session, stmt, 6), [0, 0, 0, -1, -1])
    found = found.astype(bool)
    stage = old_stage.copy()
    repeatish = np.isin(stage, [STAGE_KEYS.index("repeat"), STAGE_KEYS.index("loyal")])
    loyal = (tier_a == 1) | np.isin(seg, [SEGMENT_KEYS.index(k) for k in TOP_SEGMENTS])
    stage[repeatish & loyal] = STAGE_KEYS.index("loyal")
    stage[repeatish & ~loyal] = STAGE_KEYS.index("repeat")
    new_rfm = r * 100 + f * 10 + m
    changed = (~found & (seg >= 0)) | (found & ((new_rfm != old_rfm) | (seg != old_seg) | (stage != old_stage)))
    recency = np.where(orders > 0, today - facts.last, 0)
    result = RunResult(kind="rfm", as_of=as_of, rules=rules, customers=n, changed_rows=int(changed.sum()),
                       dry_run=dry_run)
    result.segments = segment_rows(seg, recency, orders, net)
    if want_scores:
        result.scores = (ids, r, f, m, seg, recency, orders, net)
    if dry_run or not changed.any():
        return result
    seg_label = [*SEGMENT_KEYS, None]
    stage_label = [*STAGE_KEYS, None]
    values = {"r_score": _py(r, none=0), "f_score": _py(f, none=0), "m_score": _py(m, none=0),
              "segment": _py(seg, seg_label), "stage": _py(stage, stage_label)}
    counts = {"customers": n, "changed": result.changed_rows, "window_days": window,
              "segments": {row["segment"] or "none": row["customers"] for row in result.segments}}
    result.run_id = _finish_run(session, "rfm", as_of, rules, counts)
    write_rows(session, ids, found, changed, values)
    return result


__all__ = ["recompute", "rfm", "gather", "Facts", "RunResult"]
