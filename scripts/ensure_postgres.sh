#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on $PGHOST:$PGPORT (the tests create their own databases).
# On a machine without PostgreSQL it installs Debian's package, starts the cluster and lets
# local TCP connections in without a password (test machines only). With --no-install it only
# starts an installed cluster, and says how to install one when there is none.
set -euo pipefail

NO_INSTALL=${1:-}

HOST=${PGHOST:-127.0.0.1}
PORT=${PGPORT:-5432}

cluster_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

if ! pg_isready -h "$HOST" -p "$PORT" -q 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(cluster_version)" ]; then
    if [ "$NO_INSTALL" = "--no-install" ]; then
      echo "No PostgreSQL answers on $HOST:$PORT and none is installed: run 'make postgres' (installs Debian's package)," >&2
      echo "or point PGHOST/PGPORT and PRIMSCENE_TEST_POSTGRES_URL at a server." >&2
      exit 1
    fi
    echo "PostgreSQL is not installed: installing Debian's package" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    fresh_install=1
  fi
  version=$(cluster_version)
  if [ -n "${fresh_install:-}" ]; then
    # Tests connect as `postgres` over TCP without a password, as on the project machines.
    hba=/etc/postgresql/$version/main/pg_hba.conf
    grep -q "^host all postgres 127.0.0.1/32 trust" "$hba" || sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  fi
  echo "starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 60); do
    pg_isready -h "$HOST" -p "$PORT" -q && break
    sleep 0.5
  done
  pg_isready -h "$HOST" -p "$PORT"
fi

