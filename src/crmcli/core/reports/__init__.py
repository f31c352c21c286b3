"""Reports: read-only analyses of the store, aggregated in SQL on the business date
(``purchase.purchased_on``). Each module returns plain rows and numbers; the CLI renders them.

Modules: ``periods`` (ranges and period labels), ``sql`` (portable date SQL), ``sales``, ``cohort``, ``repeat``,
``products``, ``summary`` (the dashboard) and ``features`` (sections that come from other features: tiers,
points, surveys, feedback, churn, when they are installed). See docs/reports.md.
"""
