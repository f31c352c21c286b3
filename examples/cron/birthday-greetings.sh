#!/bin/sh
# Birthday greetings for today (and anyone missed in the last 3 days, e.g. the machine was off).
# Safe to run every day: a customer is greeted once per birthday; consent is checked per channel.
#
#   GREET_VIA=csv  (default) writes $CRM_OUT/greetings/birthday-YYYY-MM-DD.csv for your SMS/WeChat tool
#   GREET_VIA=email          sends e-mails through the store's SMTP settings (crm config set smtp.host ...)
#   GREET_POINTS=100         also grants 100 birthday points, once per year (0: none)
#   GREET_COUPON='BDAY-{code}' a coupon code for templates that use {coupon}
set -eu
. "$(dirname "$0")/common.sh"
VIA="${GREET_VIA:-csv}"
POINTS="${GREET_POINTS:-0}"
set -- care send birthday --catch-up 3 --via "$VIA"
if [ "$VIA" = csv ]; then
    set -- "$@" --channel "${GREET_CHANNEL:-sms}" --out "$CRM_OUT/greetings/birthday-$TODAY.csv"
fi
if [ "$POINTS" -gt 0 ]; then
    set -- "$@" --grant-points "$POINTS"
fi
if [ -n "${GREET_COUPON:-}" ]; then
    set -- "$@" --coupon "$GREET_COUPON"
fi
"$CRM" "$@"
