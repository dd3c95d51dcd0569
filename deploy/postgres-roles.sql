-- Partner Portal: the database, its two roles, the extension and the grants.
--
-- Run once as a PostgreSQL superuser (PostgreSQL 13 or later; tested on 15):
--
--   sudo -u postgres psql -v ON_ERROR_STOP=1 \
--        -v owner_password="$OWNER_PASSWORD" -v app_password="$APP_PASSWORD" \
--        -f deploy/postgres-roles.sql
--
-- Optional variables: -v dbname=portal -v owner=portal_owner -v app=portal_app
-- -v search=portal_search.
-- Safe to run again (it creates what is missing and sets the grants and passwords again).
-- Run it again after every `flask db upgrade` that (re)creates the user search's function
-- (migration 0018): it hands the function to the SEARCH role (below).
--
-- Two roles, as row-level security requires (README, "Isolation"):
--   * the OWNER owns the database and every table; `flask db upgrade` runs as it
--     (PORTAL_DATABASE_URL=postgresql://portal_owner:…@host/portal for that command only);
--   * the APP role is what the web and mail workers connect as: not a superuser, not
--     BYPASSRLS, not the owner, with SELECT, INSERT, UPDATE, DELETE on the tables and
--     USAGE, SELECT on the sequences, now and for every table later migrations add;
--   * the SEARCH role owns one thing, the user search's SECURITY DEFINER function
--     `user_search_ids` (migration 0018), and can do nothing else: NOLOGIN, BYPASSRLS, so the
--     function reads users through the trigram indexes, which PostgreSQL never uses for LIKE
--     under a row-level security policy. The function returns only ids of the partner in the
--     transaction's `portal.partner_id`, and the app uses them inside its own partner-scoped
--     query, still held to the policies. The owner is a member, so that migrations may
--     replace or drop the function. Owned by the owner instead, the search is correct but
--     reads every user of a partner (the app then skips the function).

\if :{?dbname} \else \set dbname portal \endif
\if :{?owner} \else \set owner portal_owner \endif
\if :{?app} \else \set app portal_app \endif
\if :{?search} \else \set search portal_search \endif
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

SELECT format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT BYPASSRLS', :'search')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'search') \gexec
SELECT format('ALTER ROLE %I WITH NOLOGIN NOSUPERUSER BYPASSRLS', :'search') \gexec
SELECT format('GRANT %I TO %I', :'search', :'owner') \gexec

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

-- The user search's function (migration 0018), once migrated: to the SEARCH role, which
-- reads users for it; executable by the app role.
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'search') \gexec
SELECT format('GRANT SELECT ON public.users TO %I', :'search')
WHERE to_regclass('public.users') IS NOT NULL \gexec
SELECT format('ALTER FUNCTION public.user_search_ids(text, text, integer) OWNER TO %I', :'search')
WHERE to_regprocedure('public.user_search_ids(text, text, integer)') IS NOT NULL \gexec
SELECT format('GRANT EXECUTE ON FUNCTION public.user_search_ids(text, text, integer) TO %I', :'app')
WHERE to_regprocedure('public.user_search_ids(text, text, integer)') IS NOT NULL \gexec
SELECT CASE WHEN to_regprocedure('public.user_search_ids(text, text, integer)') IS NULL
  THEN 'Not migrated yet: run this script again after flask db upgrade (the user search''s function).'
  ELSE 'The user search''s function belongs to ' || :'search' || '.' END AS search_note \gset
\echo :search_note

\echo 'Done. Migrate as the owner, run the portal as the app role (docs/deployment.md).'
