#!/bin/sh
# Today's agenda (and the next 6 days) as a text file for people and a CSV for scripts.
# Output: $CRM_OUT/agenda/agenda-YYYY-MM-DD.txt and .csv
set -eu
. "$(dirname "$0")/common.sh"
COLUMNS=100 "$CRM" care agenda --days 7 --format table > "$CRM_OUT/agenda/agenda-$TODAY.txt"
"$CRM" care agenda --days 7 --format csv > "$CRM_OUT/agenda/agenda-$TODAY.csv"
log "agenda written to $CRM_OUT/agenda/agenda-$TODAY.txt"
