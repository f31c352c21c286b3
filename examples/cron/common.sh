# Shared settings for the crmcli cron scripts: sourced, not run.
#
# Edit these three lines (or set the variables in the crontab):
#   CRM_DB    the store file
#   CRM       the crm command (cron's PATH is short: give the full path, e.g. ~/.local/bin/crm)
#   CRM_OUT   where agendas, greeting files and logs go
: "${CRM_DB:?set CRM_DB to your store file, e.g. CRM_DB=$HOME/crm/shop.sqlite}"
export CRM_DB
CRM="${CRM:-crm}"
CRM_OUT="${CRM_OUT:-$HOME/crm}"
umask 077                     # agendas and greeting files hold personal data: readable by you only
mkdir -p "$CRM_OUT/agenda" "$CRM_OUT/greetings" "$CRM_OUT/log"
TODAY="$(date +%F)"

log() { printf '%s %s\n' "$(date '+%F %T')" "$*" >&2; }

# has_command GROUP VERB: true when this crmcli has `crm GROUP VERB` (features are optional).
has_command() { "$CRM" "$1" "$2" --help >/dev/null 2>&1; }
