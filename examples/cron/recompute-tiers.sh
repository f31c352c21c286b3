#!/bin/sh
# Recompute A/B/C tiers, RFM segments, lifecycle stages and membership levels.
set -eu
. "$(dirname "$0")/common.sh"
if has_command tier recompute; then
    "$CRM" tier recompute
else
    log "skipped: this crmcli has no 'crm tier recompute'"
fi
