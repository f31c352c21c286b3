"""Rich renderables (the customer card, charts, dashboards). Imported lazily by the CLI."""
