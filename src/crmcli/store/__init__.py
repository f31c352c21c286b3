"""Persistence: SQLModel tables, engine creation and migrations. Imported lazily by the CLI."""
