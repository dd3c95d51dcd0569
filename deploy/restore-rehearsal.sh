#!/bin/sh
# Restore a pg_dump of the portal into a scratch database and check it, without touching the
# live one. Run as a PostgreSQL superuser (sudo -u postgres), with the dump as argument:
#
#   deploy/restore-rehearsal.sh /var/backups/portal/portal-2026-03-01.dump [OWNER]
#
# It creates portal_rehearsal_<date>, restores into it as OWNER (default portal_owner),
# prints the migration revision and, per partner, its users, live sessions and audit events,
# then drops the scratch database (keep it with KEEP=1).
set -eu
# The scratch database is dropped even when a step fails (unless KEEP=1).
cleanup() { [ "${KEEP:-0}" = "1" ] || dropdb --if-exists "$scratch"; }
dump=${1:?usage: restore-rehearsal.sh DUMP [OWNER]}
owner=${2:-portal_owner}
scratch="portal_rehearsal_$(date +%Y%m%d%H%M%S)"

echo "Restoring $dump into $scratch ..."
trap cleanup EXIT
createdb --owner="$owner" "$scratch"
psql -v ON_ERROR_STOP=1 -q -d "$scratch" -c "CREATE EXTENSION IF NOT EXISTS pg_trgm"
started=$(date +%s)
# As the owner, whom row-level security holds too (FORCE): the scope 'all' lets it write
# every partner's rows, as migrations do.
PGOPTIONS="-c portal.scope=all" \
    pg_restore --no-owner --no-comments --role="$owner" --exit-on-error -d "$scratch" "$dump"
echo "Restored in $(( $(date +%s) - started )) s."

psql -v ON_ERROR_STOP=1 -d "$scratch" <<'SQL'
\echo 'Migration revision (must be the code''s head: flask db heads):'
SELECT version_num FROM alembic_version;
\echo 'Per partner (compare with the live database):'
SELECT p.slug,
       p.status,
       (SELECT count(*) FROM users u WHERE u.partner_id = p.id) AS users,
       (SELECT count(*) FROM user_sessions s WHERE s.partner_id = p.id AND s.revoked_at IS NULL
            AND s.expires_at > now() AT TIME ZONE 'utc') AS live_sessions,
       (SELECT count(*) FROM audit_events a WHERE a.partner_id = p.id) AS audit_events,
       (SELECT max(a.created_at) FROM audit_events a WHERE a.partner_id = p.id) AS last_event
FROM partners p ORDER BY p.slug;
SELECT count(*) AS operators FROM operators;
SELECT status, count(*) FROM outbox_messages GROUP BY status ORDER BY status;
SQL

if [ "${KEEP:-0}" = "1" ]; then
    echo "Kept $scratch (drop it with: dropdb $scratch)."
else
    echo "The rehearsal passed; $scratch is dropped."
fi
