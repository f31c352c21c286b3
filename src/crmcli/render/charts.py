"""Small charts drawn with Rich: horizontal bars, sparklines and heat-coloured cells. They are plain Text
renderables, so the same report saved as SVG/HTML (Console.save_svg/save_html) looks like the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text

SPARKS = "▁▂▃▄▅▆▇█"
EIGHTHS = " ▏▎▍▌▋▊▉"


def sparkline(values: Sequence[float | int | None]) -> str:
    """One character per value, scaled between the smallest and largest (a blank for None)."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif span == 0:
            out.append(SPARKS[len(SPARKS) // 2] if high else SPARKS[0])
        else:
            out.append(SPARKS[round((v - low) * (len(SPARKS) - 1) / span)])
    return "".join(out)


def bar(value: float, maximum: float, width: int = 20, *, style: str = "cyan") -> Text:
    """A bar of ``width`` cells at most, with eighth-cell precision; negative values draw nothing."""
    if maximum <= 0 or value <= 0:
        return Text("")
    eighths = round(min(value / maximum, 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if part else "")
    if not text:
        text = "▏"  # a positive value is never invisible
    return Text(text, style=style)


# From pale to deep: retention 0% .. 100%. Dark text on the light end, light text on the dark end.
_HEAT = [(0, "#f7fbff"), (5, "#deebf7"), (10, "#c6dbef"), (20, "#9ecae1"), (30, "#6baed6"),
         (45, "#4292c6"), (60, "#2171b5"), (80, "#08519c"), (95, "#08306b")]


def heat_style(percent: float | None) -> Style:
    if percent is None:
        return Style()
    colour = _HEAT[0][1]
    for threshold, value in _HEAT:
        if percent >= threshold:
            colour = value
    return Style(bgcolor=colour, color="black" if percent < 30 else "white")


def heat_cell(percent: float | None, text: str | None = None) -> Text:
    if percent is None:
        return Text("")
    return Text(text if text is not None else f"{percent:.1f}%", style=heat_style(percent))


def change_text(change: float | None, *, good_when_up: bool = True) -> Text:
    """'▲ 12.5%' in green (or red when a rise is bad), '▼ 3.0%', '—' without a previous value."""
    if change is None:
        return Text("—", style="dim")
    if change == 0:
        return Text("= 0.0%", style="dim")
    up = change > 0
    good = up == good_when_up
    return Text(f"{'▲' if up else '▼'} {abs(change):.1f}%", style="green" if good else "red")
