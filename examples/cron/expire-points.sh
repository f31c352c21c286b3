#!/bin/sh
# Expire loyalty points past their expiry date (idempotent: safe to run more than once a day).
set -eu
. "$(dirname "$0")/common.sh"
if has_command points expire; then
    "$CRM" points expire
else
    log "skipped: this crmcli has no 'crm points expire'"
fi
