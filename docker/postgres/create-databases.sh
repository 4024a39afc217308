#!/bin/sh
# Creates the Airflow and MLflow roles and databases on the shared PostgreSQL server, and sets the
# roles' passwords from the environment. Idempotent: the `postgres-init` job runs it on every `up`,
# so an existing volume is fine and a password rotated in .env is applied on the next start.
#
# Connection: PGHOST, PGUSER (the superuser), PGPASSWORD, PGDATABASE (libpq's own variables).
# Inputs:     AIRFLOW_DB_PASSWORD, MLFLOW_DB_PASSWORD (read with \getenv, so they never appear in argv).
set -eu

: "${AIRFLOW_DB_PASSWORD:?must be set}"
: "${MLFLOW_DB_PASSWORD:?must be set}"
for value in "$PGPASSWORD" "$AIRFLOW_DB_PASSWORD" "$MLFLOW_DB_PASSWORD"; do
  if [ "$value" = change-me ]; then
    echo "postgres-init: docker/.env still holds change-me placeholders; generate the secrets" >&2
    exit 1
  fi
done

psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 <<'SQL'
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv mlflow_password MLFLOW_DB_PASSWORD

SELECT format('CREATE ROLE %I LOGIN', name)
  FROM unnest(ARRAY['airflow', 'mlflow']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name)
\gexec

ALTER ROLE airflow WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_password';
ALTER ROLE mlflow WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_password';

SELECT format('CREATE DATABASE %I OWNER %I', name, name)
  FROM unnest(ARRAY['airflow', 'mlflow']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name)
\gexec

-- Each role reaches its own database only.
REVOKE CONNECT, TEMPORARY ON DATABASE airflow FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE mlflow FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE airflow TO airflow;
GRANT CONNECT, TEMPORARY ON DATABASE mlflow TO mlflow;
SQL

echo "postgres-init: roles and databases airflow, mlflow are ready"
