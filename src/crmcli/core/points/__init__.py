"""Loyalty points: an append-only ledger of lots and debits, earning rules, redemption, expiry, refunds and
referrals. See docs/points.md.

Modules: ``rules`` (settings, formulas), ``ledger`` (lots, allocations, balances), ``earning`` (purchase hook,
referrals, backfill, birthday bonus), ``refunds`` (reversal and restore), ``expiry`` (expire, expiring,
liability), ``operations`` (earn, redeem, adjust, history), ``card`` (card slot, privacy export).
"""
