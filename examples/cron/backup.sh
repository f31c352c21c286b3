#!/bin/sh
# Back up the store, keeping the last 14 copies.
# NOTE: 'crm db backup [DEST] [--keep N]' is the command the data-safety feature defines (issue 9); until a
# crmcli with it is installed, this falls back to SQLite's own online backup (consistent while crm runs).
set -eu
. "$(dirname "$0")/common.sh"
mkdir -p "$CRM_OUT/backup"
if has_command db backup; then
    "$CRM" db backup "$CRM_OUT/backup" --keep 14
elif command -v sqlite3 >/dev/null 2>&1; then
    sqlite3 "$CRM_DB" ".backup '$CRM_OUT/backup/crm-$TODAY.sqlite'"
    ls -1t "$CRM_OUT"/backup/crm-*.sqlite 2>/dev/null | tail -n +15 | xargs -r rm -f
    log "backup written with sqlite3 (no 'crm db backup' in this crmcli)"
else
    log "skipped: neither 'crm db backup' nor sqlite3 is available"
    exit 1
fi
