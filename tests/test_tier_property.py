"""Property: raising one customer's spend never lowers that customer's tier (pareto and thresholds), and
the migrated schema of the classification tables matches the models."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcli.core.tiers import Criteria, TierRules, tier_codes

spends = st.lists(st.integers(min_value=-50_000, max_value=1_000_000), min_size=1, max_size=12)


@st.composite
def pareto_rules(draw):
    a = draw(st.integers(min_value=1, max_value=10_000))  # in 1/100 %
    b = draw(st.integers(min_value=0, max_value=10_000 - a))
    return TierRules(method="pareto", pareto_a=Decimal(a) / 100, pareto_b=Decimal(b) / 100,
                     prospects=draw(st.sampled_from(["none", "C"])))


@st.composite
def threshold_rules(draw):
    def crit():
        return Criteria(min_spend=draw(st.none() | st.integers(0, 10_000).map(Decimal)),
                        min_orders=draw(st.none() | st.integers(0, 5)),
                        min_tenure=draw(st.none() | st.integers(0, 400)))
    a = crit()
    if a.empty():
        a = Criteria(min_spend=Decimal(100))
    return TierRules(method="thresholds", a=a, b=crit(), match=draw(st.sampled_from(["all", "any"])))


def _codes(net, orders, tenure, bought, rules):
    return tier_codes(np.array(net), np.array(orders), np.array(tenure), np.array(bought), rules, "CNY")[0]


@settings(max_examples=400, deadline=None)
@given(spends, st.data(), st.one_of(pareto_rules(), threshold_rules()))
def test_raising_one_customers_spend_never_lowers_their_tier(net, data, rules):
    n = len(net)
    orders = data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    tenure = data.draw(st.lists(st.integers(-1, 500), min_size=n, max_size=n))
    bought = [t >= 0 for t in tenure]
    i = data.draw(st.integers(0, n - 1))
    extra = data.draw(st.integers(1, 500_000))  # minor units
    before = _codes(net, orders, tenure, bought, rules)
    raised = list(net)
    raised[i] += extra
    more_orders = list(orders)
    more_orders[i] += 1  # a new purchase raises the count too
    after_tenure = list(tenure)
    after_tenure[i] = max(after_tenure[i], 0)  # ... and makes a prospect a buyer
    after_bought = [t >= 0 for t in after_tenure]
    after = _codes(raised, more_orders, after_tenure, after_bought, rules)
    assert after[i] >= before[i]
    same = _codes(raised, orders, tenure, bought, rules)  # the amount alone, nothing else changed
    assert same[i] >= before[i]


@settings(max_examples=12, deadline=None)
@given(amounts=st.lists(st.integers(1, 2000), min_size=2, max_size=6), who=st.integers(0, 5),
       extra=st.integers(1, 3000), refund_first=st.booleans())
def test_end_to_end_a_bigger_purchase_never_lowers_the_tier(tmp_path_factory, amounts, who, extra, refund_first):
    """Through the real store and engine: a refund-adjusted shop, then one customer buys more."""
    from crmcli.core import classify, customers, purchases
    from crmcli.core.context import StoreContext
    from crmcli.core.stores import init_store

    who %= len(amounts)
    path = tmp_path_factory.mktemp("prop") / "shop.sqlite"
    store = init_store(str(path), currency="CNY", region="CN", timezone="Asia/Shanghai").store
    as_of = date(2025, 6, 30)
    try:
        with store.write() as session:
            ctx = StoreContext.load(session, as_of)
            ids = []
            for k, amount in enumerate(amounts):
                c = customers.add_customer(session, customers.CustomerInput(name=f"P{k}"), ctx)
                sale = purchases.add_purchase(session, c, purchases.PurchaseInput(
                    amount=str(amount), at=(as_of - timedelta(days=k + 1)).isoformat()), ctx).purchase
                if refund_first and k == 0 and amount > 1:
                    purchases.refund(session, sale, ctx, amount=str(amount // 2), at=as_of.isoformat())
                ids.append(c.id)
            classify.recompute(session, ctx)
        with store.read() as session:
            from crmcli.store.models_tiers import CustomerClass

            before = session.get(CustomerClass, ids[who]).tier
        with store.write() as session:
            ctx = StoreContext.load(session, as_of)
            c = customers.get(session, ids[who])
            purchases.add_purchase(session, c, purchases.PurchaseInput(amount=str(extra), at=as_of.isoformat()), ctx)
            classify.recompute(session, ctx)
        with store.read() as session:
            after = session.get(CustomerClass, ids[who]).tier
        rank = {None: 0, "C": 1, "B": 2, "A": 3}
        assert rank[after] >= rank[before]
    finally:
        store.dispose()


def test_migrated_schema_matches_the_models(store):
    import sqlalchemy as sa

    from crmcli.store import models_tiers

    inspector = sa.inspect(store.engine)
    for model in (models_tiers.CustomerClass, models_tiers.TierPin, models_tiers.ClassRun, models_tiers.ClassHistory,
                  models_tiers.MemberLevel):
        table = model.__table__
        db_cols = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(db_cols) == {c.name for c in table.columns}, table.name
        for col in table.columns:
            assert db_cols[col.name]["nullable"] == col.nullable or col.primary_key, (table.name, col.name)
            assert db_cols[col.name]["type"].compile(dialect=store.engine.dialect) == \
                col.type.compile(dialect=store.engine.dialect), (
                table.name, col.name)
        db_indexes = {(i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table.name)
                      if not i.get("duplicates_constraint")}  # PostgreSQL lists a UNIQUE constraint's index too
        model_indexes = {(i.name, tuple(c.name for c in i.columns)) for i in table.indexes}
        assert db_indexes == model_indexes, table.name
        db_fks = {(tuple(f["constrained_columns"]), f["referred_table"]) for f in inspector.get_foreign_keys(table.name)}
        model_fks = {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}
        assert db_fks == model_fks, table.name
