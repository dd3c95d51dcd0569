-- Partner Portal: the database, its two roles, the extension and the grants.
--
-- Run once as a PostgreSQL superuser (PostgreSQL 13 or later; tested on 15):
--
--   sudo -u postgres psql -v ON_ERROR_STOP=1 \
--        -v owner_password="$OWNER_PASSWORD" -v app_password="$APP_PASSWORD" \
--        -f deploy/postgres-roles.sql
--
-- Optional variables: -v dbname=portal -v owner=portal_owner -v app=portal_app.
-- Safe to run again (it creates what is missing and sets the grants and passwords again).
--
-- Two roles, as row-level security requires (README, "Isolation"):
--   * the OWNER owns the database and every table; `flask db upgrade` runs as it
--     (PORTAL_DATABASE_URL=postgresql://portal_owner:…@host/portal for that command only);
--   * the APP role is what the web and mail workers connect as: not a superuser, not
--     BYPASSRLS, not the owner, with SELECT, INSERT, UPDATE, DELETE on the tables and
--     USAGE, SELECT on the sequences, now and for every table later migrations add.

\if :{?dbname} \else \set dbname portal \endif
\if :{?owner} \else \set owner portal_owner \endif
\if :{?app} \else \set app portal_app \endif
\if :{?owner_password} \else
  \echo 'Set the owner''s password: -v owner_password=…'
  \quit
\endif
\if :{?app_password} \else
  \echo 'Set the app role''s password: -v app_password=…'
  \quit
\endif

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS', :'owner')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS', :'app')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app') \gexec
-- Passwords are set (again) every run; BYPASSRLS is taken away should someone have given it.
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD %L', :'owner', :'owner_password') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD %L', :'app', :'app_password') \gexec

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'dbname', :'owner', 'UTF8')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'dbname') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'dbname') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'dbname', :'app') \gexec

\connect :dbname

-- The trigram index of the user search (migration 0003). pg_trgm is a trusted extension, but
-- created here, by a superuser, it works whatever the owner may do.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Only the owner creates objects in the schema; the app role uses them.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('ALTER SCHEMA public OWNER TO %I', :'owner') \gexec
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'app') \gexec

-- What exists now (nothing on a fresh database; every table after a restore or a rerun) ...
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', :'app') \gexec
SELECT format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', :'app') \gexec
-- ... and what the owner's migrations create later.
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', :'owner', :'app') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO %I', :'owner', :'app') \gexec

\echo 'Done. Migrate as the owner, run the portal as the app role (docs/deployment.md).'
