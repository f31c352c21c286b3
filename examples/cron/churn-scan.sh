#!/bin/sh
# Score churn risk for every customer (rule-based warning levels).
# NOTE: features are optional: on a crmcli built without the churn feature (issue 7) there is no
# `crm churn scan`, and the script skips it with a log line.
set -eu
. "$(dirname "$0")/common.sh"
if has_command churn scan; then
    "$CRM" churn scan
else
    log "skipped: this crmcli has no 'crm churn scan' yet"
fi
