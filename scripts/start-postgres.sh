#!/usr/bin/env bash
# Start the local PostgreSQL 15 cluster and create the test role and database.
# Idempotent; prints one line; exits 0 when PostgreSQL is not installed.
set -euo pipefail

VERSION="${PG_VERSION:-15}"
CLUSTER="${PG_CLUSTER:-main}"
ROLE="${COREDUMP_PG_ROLE:-coredump}"
PASSWORD="${COREDUMP_PG_PASSWORD:-coredump}"
DATABASE="${COREDUMP_PG_DATABASE:-coredump_test}"
WAIT_SECONDS="${PG_WAIT_SECONDS:-30}"

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d "/usr/lib/postgresql/${VERSION}" ]; then
    echo "start-postgres: skipped, PostgreSQL ${VERSION} is not installed"
    exit 0
fi

as_postgres() {
    if command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

psql_q() {
    as_postgres psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres -c "$1"
}

started="was already running"
if ! pg_ctlcluster "${VERSION}" "${CLUSTER}" status >/dev/null 2>&1; then
    pg_ctlcluster "${VERSION}" "${CLUSTER}" start >/dev/null 2>&1 || service postgresql start >/dev/null 2>&1 || true
    started="started"
fi

port="$(pg_conftool -s "${VERSION}" "${CLUSTER}" show port 2>/dev/null || echo 5432)"
deadline=$((SECONDS + WAIT_SECONDS))
until pg_isready -q -h 127.0.0.1 -p "${port}"; do
    if [ "${SECONDS}" -ge "${deadline}" ]; then
        echo "start-postgres: PostgreSQL ${VERSION}/${CLUSTER} did not answer on 127.0.0.1:${port} within ${WAIT_SECONDS}s" >&2
        exit 1
    fi
    sleep 0.5
done

created=""
if [ "$(psql_q "SELECT 1 FROM pg_roles WHERE rolname = '${ROLE}'")" != "1" ]; then
    psql_q "CREATE ROLE \"${ROLE}\" LOGIN PASSWORD '${PASSWORD//\'/\'\'}'"
    created="${created} role ${ROLE},"
fi
if [ "$(psql_q "SELECT 1 FROM pg_database WHERE datname = '${DATABASE}'")" != "1" ]; then
    psql_q "CREATE DATABASE \"${DATABASE}\" OWNER \"${ROLE}\""
    created="${created} database ${DATABASE},"
fi

echo "start-postgres: PostgreSQL ${VERSION}/${CLUSTER} ${started} on 127.0.0.1:${port};${created:- role and database already present,} url postgresql+psycopg://${ROLE}:***@127.0.0.1:${port}/${DATABASE}"
