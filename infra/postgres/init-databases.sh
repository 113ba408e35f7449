#!/usr/bin/env bash
# One database and one login role per service, each role owning only its own database
# (docs/design.md: no service reads another's database). The postgres image runs this once, on
# the first start with an empty data volume; to re-run it, remove the volume.
#
# Passwords come from the environment (docker-compose.yml passes them with dev defaults) and
# reach SQL as psql variables (:'name'), so quotes in a password cannot break the statements.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v referrals_password="${REFERRALS_DB_PASSWORD:?REFERRALS_DB_PASSWORD is not set}" \
  -v routing_password="${ROUTING_DB_PASSWORD:?ROUTING_DB_PASSWORD is not set}" \
  -v audit_password="${AUDIT_DB_PASSWORD:?AUDIT_DB_PASSWORD is not set}" \
  -v notify_password="${NOTIFY_DB_PASSWORD:?NOTIFY_DB_PASSWORD is not set}" \
  -v portal_password="${PORTAL_DB_PASSWORD:?PORTAL_DB_PASSWORD is not set}" <<'SQL'
CREATE ROLE referrals LOGIN PASSWORD :'referrals_password';
CREATE DATABASE referrals OWNER referrals;

CREATE ROLE routing LOGIN PASSWORD :'routing_password';
CREATE DATABASE routing OWNER routing;

CREATE ROLE audit LOGIN PASSWORD :'audit_password';
CREATE DATABASE audit OWNER audit;

CREATE ROLE notify LOGIN PASSWORD :'notify_password';
CREATE DATABASE notify OWNER notify;

CREATE ROLE portal LOGIN PASSWORD :'portal_password';
CREATE DATABASE portal OWNER portal;

-- PUBLIC may connect to any database by default; only each owner should reach its own.
REVOKE ALL ON DATABASE referrals FROM PUBLIC;
REVOKE ALL ON DATABASE routing FROM PUBLIC;
REVOKE ALL ON DATABASE audit FROM PUBLIC;
REVOKE ALL ON DATABASE notify FROM PUBLIC;
REVOKE ALL ON DATABASE portal FROM PUBLIC;
SQL
