# Sourced by the postgres image's entrypoint once, when the data volume is new, after
# roles.sql: sets the passwords of syncd_owner and syncd_daemon from the DSN secrets the
# syncd services use, so each password is written in one place.
password_of() { sed -E 's|^[a-z]+://[^:/@]+:([^@]*)@.*$|\1|' "$1"; }
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner="$(password_of /run/secrets/syncd_owner_dsn)" \
    -v daemon="$(password_of /run/secrets/syncd_daemon_dsn)" <<'SQL'
ALTER ROLE syncd_owner PASSWORD :'owner';
ALTER ROLE syncd_daemon PASSWORD :'daemon';
SQL
