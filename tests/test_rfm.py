"""RFM: quintile scores with ties, the segment table, `crm tier rfm` and `crm tier segments`."""

from __future__ import annotations

import itertools

import pytest

from crmcli.core.rfm import GRID, SEGMENT_KEYS, parse_segment, quintile_scores, segment_codes, segment_of
from crmcli.errors import InvalidInput
from test_tier_support import AS_OF, classes, customers, seed, stored


def scores(values):
    return quintile_scores(values).tolist()


def test_quintiles_without_ties_are_fifths():
    assert scores(list(range(1, 11))) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scores([50, 40, 30, 20, 10]) == [5, 4, 3, 2, 1]  # the order of the input does not matter


def test_quintile_ties_share_the_average_position():
    # six 1s hold positions 1..6 (average 3.5): ceil(5 * 3.5 / 10) = 2; then 2 -> 7 -> 4, 3 -> 8 -> 4,
    # 4 -> 9 -> ceil(4.5) = 5, 5 -> 10 -> 5
    assert scores([1, 1, 1, 1, 1, 1, 2, 3, 4, 5]) == [2, 2, 2, 2, 2, 2, 4, 4, 5, 5]
    assert scores([7, 7, 7, 7, 7]) == [3, 3, 3, 3, 3]  # everyone equal: the middle score
    # n = 4: 1 at position 1 -> ceil(1.25) = 2; 2 at position 2 -> ceil(2.5) = 3; the 3s at 3-4 -> ceil(4.375) = 5
    assert scores([3, 1, 3, 2]) == [5, 2, 5, 3]


def test_small_and_empty_inputs():
    assert scores([]) == []
    assert scores([42]) == [5]
    assert scores([1, 2, 3]) == [2, 4, 5]


@pytest.mark.parametrize("r,f,m,segment", [
    (5, 5, 5, "champions"), (5, 4, 4, "champions"), (4, 5, 5, "loyal"), (4, 4, 3, "loyal"), (3, 5, 4, "loyal"),
    (5, 2, 3, "potential_loyalist"), (4, 2, 2, "potential_loyalist"), (5, 1, 1, "new"), (5, 1, 2, "potential_loyalist"),
    (4, 1, 1, "promising"), (3, 3, 3, "need_attention"), (3, 2, 3, "need_attention"), (3, 1, 2, "about_to_sleep"),
    (3, 1, 1, "about_to_sleep"), (2, 3, 4, "at_risk"), (1, 3, 3, "at_risk"), (2, 5, 5, "cannot_lose"),
    (1, 4, 5, "cannot_lose"), (2, 1, 2, "hibernating"), (2, 2, 2, "hibernating"), (1, 1, 1, "lost"), (1, 2, 2, "lost"),
])
def test_each_segment_rule(r, f, m, segment):
    assert segment_of(r, f, m) == segment
    assert SEGMENT_KEYS[int(segment_codes([r], [f], [m])[0])] == segment


def test_the_table_covers_every_score_with_the_eleven_segments():
    found = {segment_of(r, f, m) for r, f, m in itertools.product(range(1, 6), repeat=3)}
    assert found == set(SEGMENT_KEYS) and len(SEGMENT_KEYS) == 11
    assert len(GRID) == 5 and all(len(row) == 5 for row in GRID)


def test_segment_names_parse():
    assert parse_segment("At risk") == "at_risk"
    assert parse_segment("at-risk") == "at_risk"
    assert parse_segment("CANNOT LOSE THEM") == "cannot_lose"
    assert parse_segment("Can't lose them") == "cannot_lose"
    with pytest.raises(InvalidInput):
        parse_segment("Whales")


def _five(cli):
    # n = 5 distinct values: each score is simply the rank. C1 best ... C5 worst on all three.
    plan = {"C1": (1, 5), "C2": (10, 4), "C3": (20, 3), "C4": (30, 2), "C5": (40, 1)}
    seed(cli, {name: [(last + 30 * k, "100") for k in range(count)] for name, (last, count) in plan.items()})


def test_rfm_command_scores_saves_and_shows_segments(cli, store):
    _five(cli)
    rows = cli.json("tier", "rfm", "--as-of", AS_OF.isoformat(), "--customers")
    assert [(r["code"], r["rfm"], r["segment"], r["recency_days"], r["frequency"], r["monetary"]) for r in rows] == [
        ("C000001", "555", "champions", 1, 5, "500.00"), ("C000002", "444", "loyal", 10, 4, "400.00"),
        ("C000003", "333", "need_attention", 20, 3, "300.00"), ("C000004", "222", "hibernating", 30, 2, "200.00"),
        ("C000005", "111", "lost", 40, 1, "100.00")]
    assert stored(store, "SELECT customer_id, r_score, f_score, m_score, segment FROM customer_class ORDER BY 1") == [
        (1, 5, 5, 5, "champions"), (2, 4, 4, 4, "loyal"), (3, 3, 3, 3, "need_attention"), (4, 2, 2, 2, "hibernating"),
        (5, 1, 1, 1, "lost")]
    segs = {r["segment"]: r for r in cli.json("tier", "segments")}
    assert segs["champions"]["customers"] == 1 and segs["at_risk"]["customers"] == 0
    assert [r["name"] for r in cli.json("customer", "list", "--segment", "Need attention")] == ["C3"]
    assert [r["code"] for r in cli.json("tier", "rfm", "--as-of", AS_OF.isoformat(), "--customers",
                                        "--segment", "lost")] == ["C000005"]


def test_rfm_recency_ties_and_window(cli):
    seed(cli, {name: [(days_ago, "100")] for name, days_ago in [("C1", 1), ("C2", 10), ("C3", 20), ("C4", 30),
                                                                   ("C5", 30)]})
    rows = {r["code"]: r for r in cli.json("tier", "rfm", "--as-of", AS_OF.isoformat(), "--customers")}
    # C4 and C5 share positions 1-2 (average 1.5): ceil(5 * 1.5 / 5) = 2
    assert rows["C000004"]["r"] == rows["C000005"]["r"] == 2
    assert rows["C000003"]["r"] == 3 and rows["C000001"]["r"] == 5
    assert {r["f"] for r in rows.values()} == {3}  # everyone bought once: the middle score
    short = cli.json("tier", "rfm", "--as-of", AS_OF.isoformat(), "--window", "15d", "--customers", "--dry-run")
    assert [r["code"] for r in short] == ["C000001", "C000002"]


def test_rfm_segment_table_output_and_errors(cli, unchanged):
    _five(cli)
    rows = cli.json("tier", "rfm", "--as-of", AS_OF.isoformat())
    assert [r["segment"] for r in rows][:3] == ["champions", "loyal", "potential_loyalist"]
    champions = rows[0]
    assert champions == {"segment": "champions", "name": "Champions", "customers": 1, "customer_share": "20.0",
                         "revenue": "500.00", "revenue_share": "33.3", "average": "500.00", "recency_days": 1.0,
                         "frequency": 5.0}
    check = unchanged()
    assert cli("tier", "rfm", "--window", "soon").exit_code == 5
    assert cli("tier", "rfm", "--customers", "--segment", "whales").exit_code == 5
    again = cli("tier", "rfm", "--as-of", AS_OF.isoformat())  # same scores: nothing written
    assert again.exit_code == 0 and "0 changed" in again.stderr
    check()


def test_segments_before_any_scoring(cli):
    customers(cli, "Ann")
    out = cli("tier", "segments")
    assert out.exit_code == 0 and "run `crm tier recompute`" in out.stderr


def test_recompute_also_scores_rfm(cli):
    _five(cli)
    cli.ok("tier", "recompute", "--as-of", AS_OF.isoformat())
    got = classes(cli)
    assert got["C1"]["rfm"] == "555" and got["C1"]["segment"] == "champions" and got["C5"]["segment"] == "lost"
