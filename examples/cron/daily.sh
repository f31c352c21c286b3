#!/bin/sh
# The daily routine, in order. One step failing does not stop the others; the exit code says whether all
# went well (cron mails the output of a failing job when MAILTO is set).
#   1. back up            (before anything changes)
#   2. expire points      3. recompute tiers      4. churn scan
#   5. birthday greetings 6. agenda to a file     (last, so it shows today's tiers, risks and greetings)
# Runs one at a time: a second copy started while one is running waits for it (flock).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
exec 9>"$CRM_OUT/log/.daily.lock"
flock 9 2>/dev/null || true
status=0
for step in backup expire-points recompute-tiers churn-scan birthday-greetings agenda; do
    log "== $step"
    if ! sh "$HERE/$step.sh" >>"$CRM_OUT/log/daily-$TODAY.log" 2>&1; then
        log "!! $step failed (see $CRM_OUT/log/daily-$TODAY.log)"
        status=1
    fi
done
exit $status
