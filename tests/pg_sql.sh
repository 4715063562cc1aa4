#!/bin/sh
# Every statement of gateway/src/store prepared by a real PostgreSQL
# against store_schema_pg.c (scripts/check-pg-sql starts a throwaway
# server on a private socket and stops it).  Skipped (77) where
# PostgreSQL is not installed: SQLite stays the default backend.
top=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(pg_config --bindir 2>/dev/null)
if ! command -v psql >/dev/null 2>&1 || { [ ! -x "$bindir/initdb" ] &&
    [ ! -x /usr/lib/postgresql/15/bin/initdb ]; }; then
	echo "pg_sql: PostgreSQL is not installed: skipped"
	exit 77
fi
exec python3 "$top/scripts/check-pg-sql" --root "$top"
