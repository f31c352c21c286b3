"""Random sequences of purchases, refunds, redemptions (some paying for purchases), expiry runs, adjustments,
manual earnings and time steps; after every step the ledger's invariants are checked against the raw tables."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import date, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import text

from crmcli.core import hooks
from crmcli.errors import InvalidInput

START = date(2024, 1, 1)
BIRTHDAYS = [date(1990, 1, 20), date(1985, 2, 3), None]
TEMPLATE: list[Path] = []


class PointsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from crmcli.core import stores

        from crmcli.store.engine import open_store

        self.dir = Path(tempfile.mkdtemp(prefix="points-machine-"))
        if not TEMPLATE:  # a new store migrated once, copied for every example (migrating costs ~0.5 s)
            TEMPLATE.append(self.dir / "template.sqlite")
            stores.init_store(str(TEMPLATE[0]), currency="CNY", region="CN", timezone="Asia/Shanghai").store.dispose()
            self.dir = Path(tempfile.mkdtemp(prefix="points-machine-"))
        shutil.copyfile(TEMPLATE[0], self.dir / "s.sqlite")
        self.store = open_store(str(self.dir / "s.sqlite"))
        self.today = START
        self.sales: list[int] = []  # sale ids
        self.customers: list[int] = []
        self.rules: dict[str, str] = {}

    def teardown(self) -> None:
        self.store.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------ helpers
    def ctx(self, session: Any) -> Any:
        from crmcli.core.context import StoreContext

        return StoreContext.load(session, as_of=self.today)

    def count_rows(self) -> tuple[int, int]:
        with self.store.read() as session:
            return (session.execute(text("SELECT COUNT(*) FROM points_ledger")).scalar_one(),
                    session.execute(text("SELECT COUNT(*) FROM points_allocation")).scalar_one())

    def attempt(self, fn: Any) -> bool:
        """Run fn(session, ctx) in a write transaction; a refusal must leave both tables as they were."""
        before = self.count_rows()
        try:
            with self.store.write() as session:
                fn(session, self.ctx(session))
            return True
        except InvalidInput:
            assert self.count_rows() == before
            return False

    # -------------------------------------------------------------------------------------- setup
    @initialize(rate=st.sampled_from(["1", "0.5", "2.5"]), rounding=st.sampled_from(["floor", "half-up"]),
                expiry=st.sampled_from(["never", "20d", "month-end:1"]), lock=st.integers(0, 5),
                referrer=st.sampled_from([0, 40]))
    def setup(self, rate: str, rounding: str, expiry: str, lock: int, referrer: int) -> None:
        from crmcli.core import customers, settings

        self.rules = {"points.enabled": "yes", "points.rate": rate, "points.rounding": rounding,
                      "points.expiry": expiry, "points.lock_days": str(lock),
                      "points.multiplier.category": "coffee=2", "points.multiplier.birthday": "1.5",
                      "points.referral.referrer": str(referrer), "points.min_purchase": "1"}
        with self.store.write() as session:
            for key, value in self.rules.items():
                settings.set_value(session, key, value)
            ctx = self.ctx(session)
            for i, birthday in enumerate(BIRTHDAYS):
                data = customers.CustomerInput(name=f"Customer {i}", birthday=birthday.isoformat() if birthday else None,
                                               referred_by="C000001" if i == 2 else None)
                c = customers.add_customer(session, data, ctx)
                assert c.id is not None
                self.customers.append(c.id)

    # -------------------------------------------------------------------------------------- steps
    @rule(who=st.integers(0, 2), minor=st.integers(50, 40_000), coffee=st.booleans(),
          later=st.sampled_from([0, 0, 1, 4, 9]))
    def purchase(self, who: int, minor: int, coffee: bool, later: int) -> None:
        """A sale, ``later`` days after the previous step."""
        from crmcli.core import customers, purchases

        self.today += timedelta(days=later)

        def go(session: Any, ctx: Any) -> None:
            customer = customers.get(session, self.customers[who])
            data = purchases.PurchaseInput(amount=f"{Decimal(minor) / 100:.2f}", category="coffee" if coffee else None)
            sale = purchases.add_purchase(session, customer, data, ctx).purchase
            assert sale.id is not None
            self.sales.append(sale.id)
        assert self.attempt(go)

    OPEN = ("p.kind = 'sale' AND p.amount_minor > (SELECT COALESCE(SUM(r.amount_minor), 0) FROM purchase r "
            "WHERE r.refund_of_id = p.id)")
    PAID = f"SELECT p.id FROM purchase p WHERE {OPEN} AND EXISTS (SELECT 1 FROM points_ledger l " \
           "WHERE l.purchase_id = p.id AND l.kind = 'redeem') ORDER BY p.id"
    SPENT = f"SELECT p.id FROM purchase p WHERE {OPEN} AND EXISTS (SELECT 1 FROM points_ledger l " \
            "JOIN points_allocation a ON a.lot_id = l.id WHERE l.purchase_id = p.id AND l.kind = 'earn') ORDER BY p.id"
    RECENT = f"SELECT p.id FROM purchase p WHERE {OPEN} ORDER BY p.id DESC LIMIT 4"

    def _refund(self, query: str, pick: int, share: float | None) -> None:
        from crmcli.core import purchases

        found = self.rows(query)
        sale_id = found[pick % len(found)]["id"]

        def go(session: Any, ctx: Any) -> None:
            sale = purchases.get_purchase(session, sale_id)
            left = sale.amount_minor - purchases.refunded_minor(session, sale_id)
            minor = left if share is None else max(1, int(left * share))
            purchases.refund(session, sale, ctx, amount=f"{Decimal(minor) / 100:.2f}")
        assert self.attempt(go)

    SHARES = st.sampled_from([None, 0.1, 0.33, 0.5, 0.999])

    @precondition(lambda self: self.rows(self.RECENT))
    @rule(pick=st.integers(0, 10_000), share=SHARES)
    def refund_recent(self, pick: int, share: float | None) -> None:
        self._refund(self.RECENT, pick, share)

    @precondition(lambda self: self.rows(self.PAID))
    @rule(pick=st.integers(0, 10_000), share=SHARES)
    def refund_paid_with_points(self, pick: int, share: float | None) -> None:
        self._refund(self.PAID, pick, share)

    @precondition(lambda self: self.rows(self.SPENT))
    @rule(pick=st.integers(0, 10_000), share=SHARES)
    def refund_after_its_points_were_used(self, pick: int, share: float | None) -> None:
        self._refund(self.SPENT, pick, share)

    @rule(who=st.integers(0, 2), share=st.sampled_from([0.3, 0.6, 1.0, 1.0, 1.7]), pay=st.booleans(),
          pick=st.integers(0, 10_000))
    def redeem(self, who: int, share: float, pay: bool, pick: int) -> None:
        """Redeem a share of the spendable balance (1.7: more than there is, which must be refused)."""
        from crmcli.core import customers
        from crmcli.core.points import ledger, operations

        cid = self.customers[who]
        payable = [r["id"] for r in self.rows(
            "SELECT id FROM purchase p WHERE kind = 'sale' AND customer_id = :c AND NOT EXISTS "
            "(SELECT 1 FROM purchase r WHERE r.refund_of_id = p.id)", c=cid)]
        purchase = payable[pick % len(payable)] if pay and payable else None

        def go(session: Any, ctx: Any) -> None:
            customer = customers.get(session, cid)
            spendable = ledger.summary(session, cid, self.today).spendable
            points = max(1, int(spendable * share))
            try:
                operations.redeem(session, customer, points, ctx, purchase_id=purchase)
            except InvalidInput:
                assert points > spendable
                raise
            assert points <= spendable
        self.attempt(go)

    @rule(who=st.integers(0, 2), delta=st.integers(-300, 300).filter(bool))
    def adjust(self, who: int, delta: int) -> None:
        from crmcli.core import customers
        from crmcli.core.points import operations

        self.attempt(lambda s, ctx: operations.adjust(s, customers.get(s, self.customers[who]), delta, ctx,
                                                       reason="machine"))

    @rule(who=st.integers(0, 2))
    def drain(self, who: int) -> None:
        """Take every live point away (so that the next refund of a spent sale has to record a debt)."""
        from crmcli.core import customers
        from crmcli.core.points import ledger, operations

        def go(session: Any, ctx: Any) -> None:
            s = ledger.summary(session, self.customers[who], self.today)
            if s.spendable + s.locked:
                operations.adjust(session, customers.get(session, self.customers[who]), -(s.spendable + s.locked), ctx,
                                  reason="drain")
        assert self.attempt(go)

    @rule(who=st.integers(0, 2), points=st.integers(1, 200))
    def earn(self, who: int, points: int) -> None:
        from crmcli.core import customers
        from crmcli.core.points import operations

        assert self.attempt(lambda s, ctx: operations.earn(s, customers.get(s, self.customers[who]), points, ctx))

    @rule()
    def expire(self) -> None:
        from crmcli.core.points import expiry

        assert self.attempt(lambda s, ctx: expiry.expire(s, self.today))
        with self.store.read() as session:
            assert expiry.overdue(session, self.today) == []
        before = self.count_rows()
        assert self.attempt(lambda s, ctx: expiry.expire(s, self.today))  # idempotent
        assert self.count_rows() == before

    @rule(days=st.sampled_from([1, 3, 7, 15, 31]))
    def advance(self, days: int) -> None:
        self.today += timedelta(days=days)

    # --------------------------------------------------------------------------------- invariants
    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.store.read() as session:
            return list(session.execute(text(sql), params).mappings())

    @invariant()
    def balances_are_the_sum_of_the_ledger_and_never_negative(self) -> None:
        from crmcli.core.points import ledger

        totals = {r["customer_id"]: r for r in self.rows(
            "SELECT customer_id, SUM(points) AS points, SUM(debt) AS debt FROM points_ledger GROUP BY customer_id")}
        lots = {r["customer_id"]: r["left"] for r in self.rows(
            "SELECT l.customer_id, SUM(l.points - COALESCE((SELECT SUM(a.points) FROM points_allocation a "
            "WHERE a.lot_id = l.id), 0)) AS left FROM points_ledger l WHERE l.points > 0 GROUP BY l.customer_id")}
        with self.store.read() as session:
            for cid, t in totals.items():
                assert t["points"] >= 0 and t["debt"] >= 0
                assert lots.get(cid, 0) == t["points"]
                s = ledger.summary(session, cid, self.today)
                assert (s.balance, s.debt) == (t["points"], t["debt"])
                if t["debt"] > 0:  # a debt exists only once every point is gone; new points repay it first
                    assert t["points"] == 0

    @invariant()
    def no_lot_is_over_consumed_and_debits_match_their_allocations(self) -> None:
        over = self.rows("SELECT l.id FROM points_ledger l JOIN points_allocation a ON a.lot_id = l.id "
                         "GROUP BY l.id HAVING SUM(a.points) > MAX(l.points)")
        assert over == []
        bad = self.rows("SELECT d.id FROM points_ledger d LEFT JOIN points_allocation a ON a.debit_id = d.id "
                        "WHERE d.points <= 0 GROUP BY d.id HAVING COALESCE(SUM(a.points), 0) != -MAX(d.points)")
        assert bad == []
        wrong = self.rows("SELECT a.id FROM points_allocation a JOIN points_ledger d ON d.id = a.debit_id "
                          "JOIN points_ledger l ON l.id = a.lot_id "
                          "WHERE l.points <= 0 OR d.points >= 0 OR l.customer_id != d.customer_id OR a.points <= 0")
        assert wrong == []
        credits_with_allocs = self.rows("SELECT a.id FROM points_allocation a JOIN points_ledger c "
                                        "ON c.id = a.debit_id WHERE c.points > 0")
        assert credits_with_allocs == []

    @invariant()
    def expired_or_locked_points_are_never_spent(self) -> None:
        for r in self.rows("SELECT d.kind, d.effective_on AS day, l.expires_on, l.spendable_on FROM points_allocation a "
                           "JOIN points_ledger d ON d.id = a.debit_id JOIN points_ledger l ON l.id = a.lot_id"):
            if r["kind"] == "expire":
                assert r["expires_on"] is not None
                assert date.fromisoformat(r["day"]) == date.fromisoformat(r["expires_on"]) + timedelta(days=1)
                continue
            assert r["expires_on"] is None or r["day"] <= r["expires_on"], dict(r)
            if r["kind"] == "redeem":
                assert r["spendable_on"] is None or r["day"] >= r["spendable_on"], dict(r)
        from crmcli.core.points import ledger

        with self.store.read() as session:
            for cid in self.customers:
                s = ledger.summary(session, cid, self.today)
                live = self.rows("SELECT COALESCE(SUM(l.points - COALESCE((SELECT SUM(a.points) FROM points_allocation a "
                                 "WHERE a.lot_id = l.id), 0)), 0) AS n FROM points_ledger l WHERE l.customer_id = :c "
                                 "AND l.points > 0 AND (l.expires_on IS NULL OR l.expires_on >= :d) "
                                 "AND (l.spendable_on IS NULL OR l.spendable_on <= :d)", c=cid, d=self.today.isoformat())
                assert s.spendable == live[0]["n"]

    @invariant()
    def each_purchase_earns_once_and_each_refund_reverses_at_most_what_was_earned(self) -> None:
        if not self.rules:
            return
        earned = self.rows("SELECT purchase_id, COUNT(*) AS n, SUM(points) AS points FROM points_ledger "
                           "WHERE kind = 'earn' AND purchase_id IS NOT NULL GROUP BY purchase_id")
        assert all(r["n"] == 1 for r in earned)
        by_sale = {r["purchase_id"]: r["points"] for r in earned}
        sales = self.rows("SELECT p.id, p.amount_minor, p.category, p.purchased_on, c.birthday, "
                          "(SELECT COALESCE(SUM(r.amount_minor), 0) FROM purchase r WHERE r.refund_of_id = p.id) AS refunded "
                          "FROM purchase p JOIN customer c ON c.id = p.customer_id WHERE p.kind = 'sale'")
        for s in sales:
            expected = self.expected_points(s)
            assert by_sale.get(s["id"], 0) == expected, (dict(s), by_sale.get(s["id"]))
            reversed_ = sum(json.loads(r["detail"])["reversed"] for r in self.rows(
                "SELECT detail FROM points_ledger WHERE kind = 'reversal' AND key LIKE 'reversal:%' AND key NOT LIKE "
                "'reversal:lot:%' AND purchase_id IN (SELECT id FROM purchase WHERE refund_of_id = :s)", s=s["id"]))
            assert reversed_ <= expected
            assert reversed_ == -(-expected * s["refunded"] // s["amount_minor"])  # ceil(E × R / A)
            for d in self.rows("SELECT id, points FROM points_ledger WHERE kind = 'redeem' AND purchase_id = :s",
                               s=s["id"]):
                returned = self.rows("SELECT COALESCE(SUM(points), 0) AS n FROM points_ledger "
                                     "WHERE kind = 'restore' AND ref_id = :d", d=d["id"])[0]["n"]
                assert returned == (-d["points"]) * s["refunded"] // s["amount_minor"]  # floor(Rd × R / A)

    def expected_points(self, s: Any) -> int:
        units = Decimal(s["amount_minor"]) / 100
        if units < 1:
            return 0
        mult = Decimal(self.rules["points.rate"])
        if s["category"] == "coffee":
            mult *= 2
        if s["birthday"] and s["birthday"][5:7] == s["purchased_on"][5:7]:
            mult *= Decimal("1.5")
        mode = ROUND_HALF_UP if self.rules["points.rounding"] == "half-up" else ROUND_FLOOR
        return int((units * mult).to_integral_value(rounding=mode))


def test_points_ledger_state_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "CLASSIFICATION", None)
    run_state_machine_as_test(PointsMachine, settings=settings(
        max_examples=30, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_the_machine_notices_a_broken_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariants are not vacuous: a debit that takes from nowhere is caught."""
    monkeypatch.setattr(hooks, "CLASSIFICATION", None)
    machine = PointsMachine()
    try:
        machine.setup(rate="1", rounding="floor", expiry="never", lock=0, referrer=0)
        machine.purchase(who=0, minor=10_000, coffee=False, later=0)
        with machine.store.write() as session:
            session.execute(text("INSERT INTO points_ledger (customer_id, kind, points, debt, effective_on, created_at, "
                                 "actor) VALUES (1, 'redeem', -500, 0, '2024-01-01', '2024-01-01 00:00:00', 't')"))
        with pytest.raises(AssertionError):
            machine.balances_are_the_sum_of_the_ledger_and_never_negative()
        with pytest.raises(AssertionError):
            machine.no_lot_is_over_consumed_and_debits_match_their_allocations()
    finally:
        machine.teardown()
