"""From a file's header to a column plan: which column feeds which field, which are ignored, which are extra.

Order of decisions for each column: ``--ignore``, then ``--map``, then the preset, then the built-in aliases,
then crmcli's own derived export columns (skipped quietly); anything else is *unknown*: listed in the summary,
or kept as a preference (KEY = the header) with ``--keep-extra``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmcli.core.io.presets import ALIASES, DERIVED, FIELDS, MULTI, PRESETS, Preset, header_key
from crmcli.errors import InvalidInput
from crmcli.i18n import _

IGNORED = "-"
# Shopify writes ids as '7393393393 so that spreadsheets keep every digit.
_ID_FIELDS = {"code", "customer_code", "ref", "refund_of_ref", "phone", "customer_phone"}


@dataclass
class Plan:
    kind: str
    headers: list[str]
    fields: list[str | None]  # per column: the field, IGNORED, or None (unknown)
    preset: Preset | None = None
    keep_extra: bool = False
    pref_keys: dict[int, str] = field(default_factory=dict)  # column → preference key (extras, preset prefs)
    duplicates: list[str] = field(default_factory=list)  # headers ignored because their field was already taken
    _columns: list[tuple[int, str | None, str | None, bool]] | None = field(default=None, repr=False)

    @property
    def unknown(self) -> list[str]:
        return [h for h, f in zip(self.headers, self.fields) if f is None and self._index(h) not in self.pref_keys]

    @property
    def ignored(self) -> list[str]:
        return [h for h, f in zip(self.headers, self.fields) if f == IGNORED]

    def _index(self, header: str) -> int:
        return self.headers.index(header)

    def column_of(self, field_name: str) -> str | None:
        """The (first) header feeding a field, for messages that name the column."""
        for h, f in zip(self.headers, self.fields):
            if f == field_name:
                return h
        return None

    def mapped(self) -> dict[str, str]:
        return {h: f for h, f in zip(self.headers, self.fields) if f and f != IGNORED}

    def values(self, cells: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
        """One row's cells → ({field: value or [values]}, {preference key: value}). Empty cells are absent."""
        out: dict[str, Any] = {}
        prefs: dict[str, str] = {}
        empty = self.preset.empty if self.preset else ()
        width = len(cells)
        for i, f, pref, multi in self._active():
            if i >= width:
                continue
            value = cells[i].strip()
            if not value:
                continue
            if value[0] == "'":
                value = unescape(value)
                if f in _ID_FIELDS and value[0] == "'" and value[1:].isdigit():
                    value = value[1:]
            if empty and value.casefold() in empty:
                continue
            if pref is not None:
                prefs[pref] = value
            elif multi:
                if f in out:
                    out[f].append(value)
                else:
                    out[f] = [value]
            elif f not in out:
                out[f] = value
        return out, prefs

    def _active(self) -> list[tuple[int, str | None, str | None, bool]]:
        """(column, field, preference key, whether the field takes several values) of the columns that feed
        something, computed once."""
        if self._columns is None:
            self._columns = [(i, f, self.pref_keys.get(i), f in MULTI) for i, f in enumerate(self.fields)
                             if i in self.pref_keys or (f and f != IGNORED)]
        return self._columns


def unescape(value: str) -> str:
    """Undo the exporter's formula neutralisation (and Shopify's quoting of ids): a leading apostrophe before
    = + - @ or another apostrophe is dropped."""
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@'\t\r":
        return value[1:]
    return value




def parse_map(items: list[str], kind: str) -> dict[str, str]:
    """'--map "CSV column=field"' (repeatable) → {header key: field}."""
    out: dict[str, str] = {}
    for item in items:
        column, sep, target = item.rpartition("=")
        target = target.strip().lower().replace("-", "_").replace(" ", "_")
        if not sep or not column.strip():
            raise InvalidInput(_("'{value}' is not a column mapping.").format(value=item), field="--map", value=item,
                               hint=_("Write \"CSV column=field\", e.g. --map \"Mobile=phone\"."))
        if target not in FIELDS[kind] and target not in ("ignore", IGNORED):
            raise InvalidInput(_("'{field}' is not a field of {kind}.").format(field=target, kind=kind),
                               field="--map", value=item,
                               hint=_("Fields: {fields}.").format(fields=", ".join(FIELDS[kind])))
        out[header_key(column)] = IGNORED if target in ("ignore", IGNORED) else target
    return out


def preset(name: str | None) -> Preset | None:
    if name is None:
        return None
    found = PRESETS.get(name.strip().lower())
    if found is None:
        raise InvalidInput(_("'{value}' is not a preset.").format(value=name), field="--preset", value=name,
                           hint=_("Use one of: {choices}.").format(choices=", ".join(PRESETS)))
    return found


def plan(kind: str, headers: list[str], *, mapping: dict[str, str] | None = None, ignore: list[str] | None = None,
         preset_name: str | None = None, keep_extra: bool = False) -> Plan:
    chosen = preset(preset_name)
    ignore_keys = {header_key(c) for c in ignore or []}
    mapping = mapping or {}
    header_keys = [header_key(h) for h in headers]
    for wanted in list(mapping) + list(ignore_keys):
        if wanted not in header_keys:
            raise InvalidInput(_("There is no column '{column}' in the file.").format(column=wanted),
                               field="--map", value=wanted,
                               hint=_("The columns are: {columns}.").format(columns=", ".join(headers)))
    fields: list[str | None] = []
    result = Plan(kind=kind, headers=list(headers), fields=fields, preset=chosen, keep_extra=keep_extra)
    for i, (header, key) in enumerate(zip(headers, header_keys)):
        target: str | None
        if key in ignore_keys:
            target = IGNORED
        elif key in mapping:
            target = mapping[key]
        elif chosen is not None and key in chosen.preferences:
            result.pref_keys[i] = chosen.preferences[key]
            target = None
        elif chosen is not None and (found := chosen.field_for(header)) is not None:
            target = found
        elif key in ALIASES[kind]:
            target = ALIASES[kind][key]
        elif key in {header_key(d) for d in DERIVED[kind]}:
            target = IGNORED
        else:
            target = None
        if target is None and keep_extra and i not in result.pref_keys and header.strip():
            result.pref_keys[i] = header.strip()[:64]
        fields.append(target)
    # A single-valued field fed by several columns keeps one: the column named exactly like the field (an
    # export's 'purchased_at' over its 'date'), else the first (HubSpot's associated company repeats
    # 'Record ID', 'City' ...). The others are reported as ignored.
    for target in {f for f in fields if f and f != IGNORED and f not in MULTI}:
        columns = [i for i, f in enumerate(fields) if f == target]
        if len(columns) < 2:
            continue
        exact = [i for i in columns if header_keys[i] == header_key(target) or header_keys[i] in mapping]
        keep = (exact or columns)[0]
        for i in columns:
            if i != keep:
                fields[i] = IGNORED
                result.duplicates.append(headers[i])
    return result
