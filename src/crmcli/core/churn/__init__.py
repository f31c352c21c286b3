"""Churn warning, customer lifetime value and repurchase prediction (`crm churn`, docs/churn.md).

- ``rules`` / ``scan``: explainable rule-based risk levels (none/low/medium/high) with reasons and figures;
- ``summary``: the per-customer (frequency, recency, T, monetary) summary, one SQL aggregate;
- ``bgnbd`` / ``gammagamma``: the BG/NBD and Gamma-Gamma models (maximum likelihood, numpy/scipy);
- ``clv`` / ``modeling``: CLV, fitting, scoring and the holdout validation, stored in the churn tables;
- ``nextbuy``: expected next purchase date and likely next products;
- ``card``: the churn slot of the customer card.

numpy and scipy are imported inside functions only, so importing this package stays cheap.
"""
