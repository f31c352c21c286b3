"""The dashboard layout: a heading and small panels of label/value lines that flow into as many columns as
the width allows (two at 80 columns), so it fits one screen and exports to SVG/HTML unchanged."""

from __future__ import annotations

from collections.abc import Sequence

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

Line = tuple[str, RenderableType, RenderableType | None]  # label, value, note (e.g. the change)
PANEL_WIDTH = 39


def panel(title: str, lines: Sequence[Line], *, width: int = PANEL_WIDTH) -> Panel:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    for label, value, note in lines:
        grid.add_row(label, value, note if note is not None else "")
    return Panel(grid, title=Text(title, style="bold"), title_align="left", width=width, padding=(0, 1))


def table_panel(title: str, table: Table, *, width: int = PANEL_WIDTH) -> Panel:
    return Panel(table, title=Text(title, style="bold"), title_align="left", width=width, padding=(0, 1))


def dashboard(heading: str, subheading: str, panels: Sequence[Panel]) -> RenderableType:
    return Group(Text(heading, style="bold"), Text(subheading, style="dim"), Text(""),
                 Columns(list(panels), padding=(0, 1)))
