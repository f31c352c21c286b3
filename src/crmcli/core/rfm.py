"""RFM scoring: recency, frequency and monetary scores 1-5 by quintiles, and the named segment table.

Who is scored: customers with at least one sale in the window (default 365 days up to the as-of date).
- R: the date of the last sale (later is better); F: number of sales in the window; M: net spend in the
  window (sales minus refunds dated in the window).
- Quintile score with ties (docs/tiers.md): sort the n scored values from worst to best; a value shared by
  customers at positions lo..hi (1-based) gets the average position p = (lo + hi) / 2 and the score
  ceil(5 * p / n), i.e. (5 * (lo + hi) + 2n - 1) // 2n. Equal values always get equal scores; with no
  ties this is exactly "bottom fifth 1, ..., top fifth 5".
- Segment: from R and FM = round-half-up((F + M) / 2) in the 5x5 table ``GRID`` below.
"""

from __future__ import annotations

from typing import Any

from crmcli.errors import InvalidInput
from crmcli.i18n import N_, _

# Segment keys (stored, JSON) and their names (translated where shown). Order: best to worst.
SEGMENTS: dict[str, str] = {
    "champions": N_("Champions"),
    "loyal": N_("Loyal"),
    "potential_loyalist": N_("Potential loyalist"),
    "new": N_("New"),
    "promising": N_("Promising"),
    "need_attention": N_("Need attention"),
    "about_to_sleep": N_("About to sleep"),
    "at_risk": N_("At risk"),
    "cannot_lose": N_("Cannot lose them"),
    "hibernating": N_("Hibernating"),
    "lost": N_("Lost"),
}
SEGMENT_KEYS: tuple[str, ...] = tuple(SEGMENTS)
# Segments that make a repeat customer "loyal" in the lifecycle.
TOP_SEGMENTS = ("champions", "loyal")

# GRID[R - 1][FM - 1] -> segment key.  Rows: R = 1..5; columns: FM = 1..5.
GRID: tuple[tuple[str, ...], ...] = (
    ("lost", "lost", "at_risk", "at_risk", "cannot_lose"),                                   # R = 1
    ("hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"),                     # R = 2
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),                # R = 3
    ("promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"),             # R = 4
    ("new", "potential_loyalist", "potential_loyalist", "champions", "champions"),           # R = 5
)


def segment_label(key: str | None) -> str:
    return _(SEGMENTS[key]) if key in SEGMENTS else "—"


def segment_of(r: int, f: int, m: int) -> str:
    """The segment key of one (R, F, M) triple of scores 1-5."""
    return GRID[r - 1][(f + m + 1) // 2 - 1]


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").replace("-", " ").replace("'", "").split())


def parse_segment(text: str) -> str:
    """'At risk', 'at-risk', 'at_risk' or the translated name → 'at_risk'."""
    wanted = _norm(text)
    for key, name in SEGMENTS.items():
        if wanted in (_norm(key), _norm(name), _norm(_(name))):
            return key
    if wanted in ("cant lose them", "can not lose them", "cannot lose"):
        return "cannot_lose"
    raise InvalidInput(_("'{value}' is not an RFM segment.").format(value=text), field="segment", value=text,
                       hint=_("Use one of: {choices}.").format(choices=", ".join(_(n) for n in SEGMENTS.values())))


def quintile_scores(values: Any) -> Any:
    """Scores 1-5 (numpy int8 array) for ``values`` where higher is better; equal values, equal scores."""
    import numpy as np

    v = np.asarray(values)
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    if np.issubdtype(v.dtype, np.integer):
        low, high = int(v.min()), int(v.max())
        if high - low <= 4 * n + 1024:  # days and counts: a histogram instead of a sort (same scores)
            offset = (v - low).astype(np.intp)
            counts = np.bincount(offset, minlength=high - low + 1).astype(np.int64)
            less = np.cumsum(counts) - counts
            scores = (5 * (2 * less + counts + 1) + 2 * n - 1) // (2 * n)
            return np.clip(scores, 1, 5).astype(np.int8)[offset]
    uniq, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    less = np.cumsum(counts, dtype=np.int64) - counts  # values strictly below each distinct value
    lo = less + 1
    hi = less + counts
    scores = (5 * (lo + hi) + 2 * n - 1) // (2 * n)
    return np.clip(scores, 1, 5).astype(np.int8)[inverse.reshape(-1)]


def segment_codes(r: Any, f: Any, m: Any) -> Any:
    """Vectorized ``segment_of``: index into SEGMENT_KEYS (numpy int8 array)."""
    import numpy as np

    table = np.array([[SEGMENT_KEYS.index(key) for key in row] for row in GRID], dtype=np.int8)
    r = np.asarray(r, dtype=np.int64)
    fm = (np.asarray(f, dtype=np.int64) + np.asarray(m, dtype=np.int64) + 1) // 2
    return table[r - 1, fm - 1]
