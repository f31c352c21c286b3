"""crmcli: customer relationship management for small businesses, in one SQLite file.

The public Python API is importable from here for scripts (see examples/):

    from crmcli import open_store
    from crmcli.core import customers
    with open_store("shop.sqlite").write() as session:
        customers.add_customer(session, customers.CustomerInput(name="Ann"))

Heavy modules are imported lazily so that ``crm --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from crmcli.store.engine import Store


def open_store(location: str | None = None, *, create: bool = False) -> "Store":
    """Open (and migrate) the store at ``location`` (path or URL; default: CRM_DB or the user data dir)."""
    from crmcli.store.engine import open_store as _open

    return _open(location, create=create)


def __getattr__(name: str) -> Any:  # pragma: no cover - convenience only
    raise AttributeError(name)
