"""The bulk engine behind `crm tier recompute` and `crm tier rfm`.

1. One SQL aggregate, GROUP BY customer over the purchases (sales minus refunds, on the business date
   ``purchased_on``): counts and net spend per window, first and last sale, number of purchase days.
2. The rules run vectorized over numpy arrays (crmcli.core.tiers / rfm / lifecycle / levels).
3. The result is compared with the stored classification; only rows that differ are written (Core
   executemany), each tier or level change gets a history row, and one ``class_run`` row plus one audit
   row describe the run. A run that changes nothing writes nothing, so a second run with the same
   as-of date leaves the store byte-for-byte unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import String, and_, bindparam, case, distinct, func, insert, select, type_coerce, update
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


@dataclass
class Facts:
    """Per live customer (ids ascending), as numpy arrays."""

    ids: Any
    windows: dict[int, tuple[Any, Any]]  # window days -> (sales count, net spend)
    first: Any  # epoch day of the first sale (NO_DATE if none)
    last: Any  # epoch day of the last sale (in the window only, for window-only facts)
    days: Any  # number of purchase days (all history; None for window-only facts)


@dataclass
class Moves:
    up: int = 0
    down: int = 0
    new: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"up": self.up, "down": self.down, "new": self.new}


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


def _epoch(values: list[Any]) -> Any:
    import numpy as np

    arr = np.array(values, dtype="datetime64[D]").astype(np.int64)
    arr[arr == np.iinfo(np.int64).min] = NO_DATE
    return arr


def _columns(rows: list[Any], n: int) -> list[tuple[Any, ...]]:
    return list(zip(*rows)) if rows else [() for _ in range(n)]


def live_ids(session: Session) -> Any:
    import numpy as np

    rows = session.execute(select(C.c.id).where(C.c.deleted_at.is_(None), C.c.erased_at.is_(None))
                           .order_by(C.c.id)).scalars().all()
    return np.array(rows, dtype=np.int64)


def gather(session: Session, as_of: date, windows: list[int], *, all_history: bool) -> Facts:
    """The SQL aggregate. ``all_history``: also first sale, purchase days, last sale over all history
    (recompute); otherwise only the purchases of the single window are read (rfm)."""
    import numpy as np

    sale = P.c.kind == "sale"
    signed = case((sale, P.c.amount_minor), else_=-P.c.amount_minor)
    windows = sorted(set(windows))
    cols: list[Any] = [P.c.customer_id]
    if all_history:
        for w in windows:
            start = as_of - timedelta(days=w - 1)
            cols.append(func.sum(case((and_(sale, P.c.purchased_on >= start), 1), else_=0)))
            cols.append(func.sum(case((P.c.purchased_on >= start, signed), else_=0)))
        cols.append(type_coerce(func.min(case((sale, P.c.purchased_on), else_=None)), String))
        cols.append(type_coerce(func.max(case((sale, P.c.purchased_on), else_=None)), String))
        cols.append(func.count(distinct(case((sale, P.c.purchased_on), else_=None))))
        stmt = select(*cols).where(P.c.purchased_on <= as_of)
    else:
        (w,) = windows
        start = as_of - timedelta(days=w - 1)
        cols += [func.sum(case((sale, 1), else_=0)), func.sum(signed),
                 type_coerce(func.max(case((sale, P.c.purchased_on), else_=None)), String)]
        stmt = select(*cols).where(P.c.purchased_on >= start, P.c.purchased_on <= as_of)
    rows = session.execute(stmt.group_by(P.c.customer_id)).all()
    ncols = len(cols)
    columns = _columns(rows, ncols)
    agg_ids = np.array(columns[0], dtype=np.int64)
    ids = live_ids(session)
    n = len(ids)
    order = np.argsort(agg_ids, kind="stable")
    agg_ids = agg_ids[order]
    pos = np.searchsorted(agg_ids, ids)
    pos_c = np.minimum(pos, max(len(agg_ids) - 1, 0))
    found = (pos < len(agg_ids)) & (agg_ids[pos_c] == ids) if len(agg_ids) else np.zeros(n, dtype=bool)
    src = order[pos_c][found] if len(agg_ids) else np.zeros(0, dtype=np.int64)

    def take(col: tuple[Any, ...], default: int, dates: bool = False) -> Any:
        out = np.full(n, default, dtype=np.int64)
        if len(col):
            values = _epoch(list(col)) if dates else np.array(col, dtype=np.int64)
            out[found] = values[src]
        return out

    result: dict[int, tuple[Any, Any]] = {}
    if all_history:
        i = 1
        for w in windows:
            result[w] = (take(columns[i], 0), take(columns[i + 1], 0))
            i += 2
        first, last, days = take(columns[i], NO_DATE, True), take(columns[i + 1], NO_DATE, True), take(columns[i + 2], 0)
    else:
        result[windows[0]] = (take(columns[1], 0), take(columns[2], 0))
        first, last, days = None, take(columns[3], NO_DATE, True), None
    return Facts(ids=ids, windows=result, first=first, last=last, days=days)


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
    level_name: list[Any]
    since: Any
    basis: Any


def load_stored(session: Session, ids: Any, level_ranks: dict[str, int]) -> Stored:
    import numpy as np

    cols = [CC.c.customer_id, CC.c.tier, CC.c.computed_tier, CC.c.net_minor, CC.c.orders, CC.c.r_score, CC.c.f_score,
            CC.c.m_score, CC.c.segment, CC.c.stage, CC.c.level, type_coerce(CC.c.level_since, String), CC.c.basis_minor]
    rows = session.execute(select(*cols).order_by(CC.c.customer_id)).all()
    columns = _columns(rows, len(cols))
    n = len(ids)
    sid = np.array(columns[0], dtype=np.int64)
    pos = np.searchsorted(sid, ids)
    pos_c = np.minimum(pos, max(len(sid) - 1, 0))
    found = (pos < len(sid)) & (sid[pos_c] == ids) if len(sid) else np.zeros(n, dtype=bool)
    src = pos_c[found]
    seg_index = {k: i for i, k in enumerate(SEGMENT_KEYS)}
    stage_index = {k: i for i, k in enumerate(STAGE_KEYS)}

    def codes(col: tuple[Any, ...], mapping: dict[Any, int], default: int) -> Any:
        out = np.full(n, default, dtype=np.int64)
        if len(col):
            values = np.fromiter((mapping.get(v, default) for v in col), dtype=np.int64, count=len(col))
            out[found] = values[src]
        return out

    def ints(col: tuple[Any, ...], default: int) -> Any:
        out = np.full(n, default, dtype=np.int64)
        if len(col):
            values = np.fromiter((default if v is None else v for v in col), dtype=np.int64, count=len(col))
            out[found] = values[src]
        return out

    level_map: dict[Any, int] = {None: 0, **level_ranks}
    level = np.zeros(n, dtype=np.int64)
    level_name: list[Any] = [None] * n
    if len(columns[10]):
        values = np.fromiter((level_map.get(v, -1) for v in columns[10]), dtype=np.int64, count=len(columns[10]))
        level[found] = values[src]
        if (level < 0).any():
            for i in np.nonzero(level < 0)[0].tolist():
                level_name[i] = columns[10][int(pos_c[i])]
    since = np.full(n, NO_DATE, dtype=np.int64)
    if len(columns[11]):
        since[found] = _epoch(list(columns[11]))[src]
    tier_map: dict[Any, int] = dict(TIER_CODES)
    return Stored(found=found, tier=codes(columns[1], tier_map, 0), computed=codes(columns[2], tier_map, 0),
                  net=ints(columns[3], 0), orders=ints(columns[4], 0), r=ints(columns[5], 0), f=ints(columns[6], 0),
                  m=ints(columns[7], 0), seg=codes(columns[8], seg_index, -1), stage=codes(columns[9], stage_index, -1),
                  level=level, level_name=level_name, since=since, basis=ints(columns[12], NONE_INT))


def load_pins(session: Session, ids: Any) -> Any:
    import numpy as np

    out = np.zeros(len(ids), dtype=np.int64)
    rows = session.execute(select(PIN.c.customer_id, PIN.c.tier)).all()
    if rows:
        pid = np.array([r[0] for r in rows], dtype=np.int64)
        code = np.array([TIER_CODES.get(r[1], 0) for r in rows], dtype=np.int64)
        pos = np.searchsorted(ids, pid)
        ok = (pos < len(ids)) & (ids[np.minimum(pos, max(len(ids) - 1, 0))] == pid) if len(ids) else np.zeros(0, bool)
        out[pos[ok]] = code[ok]
    return out


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
    revenue_all = int(np.maximum(net[seg >= 0], 0).sum()) if total_n else 0
    out = []
    for code, key in [*enumerate(SEGMENT_KEYS), (-1, None)]:
        mask = seg == code
        count = int(mask.sum())
        if key is None and count == 0:
            continue
        rev = int(net[mask].sum()) if count else 0
        out.append({"segment": key, "customers": count,
                    "customer_share": tiers_mod._pct(count, total_n),
                    "revenue_minor": rev, "revenue_share": tiers_mod._pct(max(rev, 0), revenue_all) if key else None,
                    "average_minor": round(rev / count) if count and key else None,
                    "recency_days": round(float(recency[mask].mean()), 1) if count and key else None,
                    "frequency": round(float(orders[mask].mean()), 2) if count and key else None})
    return out


# ------------------------------------------------------------------------------------------ writing

CLASS_COLUMNS = ("tier", "computed_tier", "net_minor", "orders", "r_score", "f_score", "m_score", "segment", "stage",
                 "level", "level_since", "basis_minor")


def _py(values: Any, mapping: Any = None, none: int | None = None) -> list[Any]:
    items = values.tolist()
    if mapping is not None:
        return [mapping[v] for v in items]
    if none is not None:
        return [None if v == none else v for v in items]
    return items


def write_rows(session: Session, ids: Any, found: Any, changed: Any, values: dict[str, list[Any]]) -> None:
    """Update the changed existing rows, insert the missing ones (executemany, in batches)."""
    import numpy as np

    keys = list(values)
    upd_idx = np.nonzero(changed & found)[0]
    ins_idx = np.nonzero(changed & ~found)[0]
    batch = 20_000
    if len(upd_idx):
        stmt = (update(CC).where(CC.c.customer_id == bindparam("_cid"))
                .values({k: bindparam("_" + k) for k in keys}))
        for start in range(0, len(upd_idx), batch):
            part = upd_idx[start:start + batch].tolist()
            session.execute(stmt, [{"_cid": int(ids[i]), **{"_" + k: values[k][i] for k in keys}} for i in part])
    if len(ins_idx):
        defaults = {"net_minor": 0, "orders": 0}
        stmt_i = insert(CC)
        for start in range(0, len(ins_idx), batch):
            part = ins_idx[start:start + batch].tolist()
            session.execute(stmt_i, [{**defaults, "customer_id": int(ids[i]), **{k: values[k][i] for k in keys}}
                                     for i in part])


def _moves(new: Any, old: Any) -> Moves:
    import numpy as np

    return Moves(up=int(np.count_nonzero((new > old) & (old > 0))), down=int(np.count_nonzero(new < old)),
                 new=int(np.count_nonzero((old <= 0) & (new > 0))))


def _finish_run(session: Session, kind: str, as_of: date, rules: Rules, counts: dict[str, Any]) -> int:
    from crmcli.core import audit

    run_id = tiers_mod._new_run(session, kind, as_of, rules.params(), counts)
    audit.record(session, entity="class_run", entity_id=run_id, action=kind,
                 after={"as_of": as_of, **counts})
    return run_id


# ---------------------------------------------------------------------------------------- recompute

def recompute(session: Session, ctx: Any, *, dry_run: bool = False, want_changes: bool = False) -> RunResult:
    """Tiers, RFM segments, lifecycle stages and membership levels for every live customer as of ctx.today."""
    import numpy as np

    from crmcli.core import hooks, levels as levels_mod
    from crmcli.core.lifecycle import stage_codes
    from crmcli.core.rfm import TOP_SEGMENTS

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
    facts = gather(session, as_of, windows, all_history=True)
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
    top_codes = [SEGMENT_KEYS.index(k) for k in TOP_SEGMENTS]
    top = (effective == TIER_CODES["A"]) | np.isin(seg, top_codes)
    stage = stage_codes(facts.days, facts.first, facts.last, today, top, rules.lifecycle).astype(np.int64)

    names = [lvl.name for lvl in defined]
    stored = load_stored(session, ids, {name: i + 1 for i, name in enumerate(names)})
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
    level_label = [None, *names]

    def level_from(i: int) -> Any:
        code = int(stored.level[i])
        return stored.level_name[i] if code < 0 else level_label[code]

    if want_changes:
        for i in np.nonzero(tier_changed | level_changed)[0].tolist():
            if tier_changed[i]:
                result.changes.append({"customer_id": int(ids[i]), "kind": "tier", "from": CODE_TIERS[stored.tier[i]],
                                       "to": CODE_TIERS[effective[i]], "net_minor": int(net_t[i]),
                                       "orders": int(orders_t[i])})
            if level_changed[i]:
                result.changes.append({"customer_id": int(ids[i]), "kind": "level", "from": level_from(i),
                                       "to": level_label[level[i]], "net_minor": int(net_t[i]),
                                       "orders": int(orders_t[i])})
    if dry_run or not changed.any():
        return result

    seg_label = [*SEGMENT_KEYS, None]  # index -1 -> None
    stage_label = [*STAGE_KEYS, None]
    values = {
        "tier": _py(effective, CODE_TIERS), "computed_tier": _py(computed, CODE_TIERS), "net_minor": _py(net_t),
        "orders": _py(orders_t), "r_score": _py(r, none=0), "f_score": _py(f, none=0), "m_score": _py(m, none=0),
        "segment": _py(seg, seg_label), "stage": _py(stage, stage_label), "level": _py(level, level_label),
        "level_since": [from_epoch_day(d) for d in since.tolist()] if defined else [None] * n,
        "basis_minor": _py(basis, none=NONE_INT),
    }
    run_counts = {"customers": n, "changed": result.changed_rows, "tier": result.tier.as_dict(),
                  "level": result.level.as_dict(), "tiers": result.tiers}
    run_id = _finish_run(session, "recompute", as_of, rules, run_counts)
    result.run_id = run_id
    write_rows(session, ids, stored.found, changed, values)
    history: list[dict[str, Any]] = []
    for i in np.nonzero(tier_changed)[0].tolist():
        history.append({"run_id": run_id, "customer_id": int(ids[i]), "kind": "tier",
                        "from_value": CODE_TIERS[stored.tier[i]], "to_value": values["tier"][i],
                        "net_minor": values["net_minor"][i], "orders": values["orders"][i],
                        "tenure_days": int(tenure[i]) if tenure[i] >= 0 else None,
                        "share_bp": int(share[i]) if share is not None and net_t[i] > 0 else None,
                        "basis_minor": None, "note": "pinned" if pins[i] > 0 else None})
    for i in np.nonzero(level_changed)[0].tolist():
        history.append({"run_id": run_id, "customer_id": int(ids[i]), "kind": "level", "from_value": level_from(i),
                        "to_value": values["level"][i], "net_minor": values["net_minor"][i],
                        "orders": values["orders"][i], "tenure_days": int(tenure[i]) if tenure[i] >= 0 else None,
                        "share_bp": None, "basis_minor": values["basis_minor"][i], "note": None})
        if len(history) >= 50_000:
            session.execute(insert(HIST), history)
            history = []
    for start in range(0, len(history), 50_000):
        session.execute(insert(HIST), history[start:start + 50_000])
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
    out = np.zeros(len(ids), dtype=np.int64)
    if rows:
        pid = np.array([r[0] for r in rows], dtype=np.int64)
        pts = np.array([int(r[1] or 0) for r in rows], dtype=np.int64)
        pos = np.searchsorted(ids, pid)
        ok = (pos < len(ids)) & (ids[np.minimum(pos, max(len(ids) - 1, 0))] == pid)
        out[pos[ok]] = pts[ok]
    return out


# ---------------------------------------------------------------------------------------------- rfm

def rfm(session: Session, ctx: Any, *, window_days: int | None = None, dry_run: bool = False,
        want_scores: bool = False) -> RunResult:
    """Score every live customer with a sale in the window and save R, F, M and the segment (and the
    loyal/repeat stage that depends on the segment). Stages otherwise change only with a recompute."""
    import numpy as np

    rules = tiers_mod.load_rules(session)
    window = window_days or rules.rfm_window
    as_of = ctx.today
    today = epoch_day(as_of)
    facts = gather(session, as_of, [window], all_history=False)
    ids = facts.ids
    n = len(ids)
    orders, net = facts.windows[window]
    r, f, m, seg = score_rfm(facts.last, orders, net)
    stored = load_stored(session, ids, {})
    top_codes = [SEGMENT_KEYS.index(k) for k in TOP_SEGMENTS]
    stage = stored.stage.copy()
    repeatish = np.isin(stage, [STAGE_KEYS.index("repeat"), STAGE_KEYS.index("loyal")])
    loyal = (stored.tier == TIER_CODES["A"]) | np.isin(seg, top_codes)
    stage[repeatish & loyal] = STAGE_KEYS.index("loyal")
    stage[repeatish & ~loyal] = STAGE_KEYS.index("repeat")
    changed = (~stored.found & (seg >= 0)) | (stored.found & ((r != stored.r) | (f != stored.f) | (m != stored.m)
                                                              | (seg != stored.seg) | (stage != stored.stage)))
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
    write_rows(session, ids, stored.found, changed, values)
    return result
