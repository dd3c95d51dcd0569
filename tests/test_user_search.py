"""The users' substring search: the trigram index (SQLite's FTS5 table, PostgreSQL's function
over its trigram indexes) finds exactly what LIKE finds, stays in step with the users, and
never reaches across partners."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import hand_search_function_over, logged_in, rows
from flask import Flask
from flask_migrate import downgrade, upgrade
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from querybudget import counted

from portal.extensions import db
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope, raw_sql, unscoped
from portal.users import queries, search
from portal.users.models import User
from portal.users.queries import UserQuery, search_users, users_after

MIGRATIONS = str(Path(__file__).parent.parent / "migrations")
# Emails and display names with everything a search text may trip on: LIKE's wildcards and
# escape, FTS5's syntax (quotes, AND/OR/NOT/NEAR, *, ^, :, parentheses), letters beyond ASCII.
PEOPLE = [
    ("ann.lee@acme.test", "Ann Lee"),
    ("bob_smith@acme.test", "Bob O'Brien"),
    ("100%sure@acme.test", 'The "Quoted" One'),
    ("back\\slash@acme.test", "C:\\Users\\ann"),
    ("and.or@acme.test", "AND OR NOT NEAR"),
    ("near@acme.test", "NEAR(ann lee, 2)"),
    ("star@acme.test", "Star* ^Caret {col} : (x)"),
    ("zoe@acme.test", "Zoë Ünïcode"),
    ("emile@acme.test", "ÉMILE élan"),
    ("istanbul@acme.test", "İstanbul Iğd\u0131r"),
    ("aaa@acme.test", "aaaa aaa"),
    ("tab@acme.test", "Tab\tName"),
    ("user0500@acme.test", "Person 500"),
    ("user0501@acme.test", "Person 501"),
    ("person5@acme.test", "user0500 fan"),
]
TEXTS = [
    "ann",
    "ANN",
    "Lee",
    "%",
    "_",
    "100%",
    "b_s",
    "%sure",
    "'",
    "O'B",
    '"',
    '"Quoted"',
    '""',
    "\\",
    "k\\s",
    "C:\\U",
    "AND",
    "and",
    "OR NOT",
    "NEAR",
    "NEAR(ann",
    "*",
    "Star*",
    "^Ca",
    "{col}",
    ": (",
    "zoë",
    "ZOË",
    "ünï",
    "ÜNÏ",
    "émile",
    "ÉMILE",
    "Émi",
    "élan",
    "İst",
    "i̇st",
    "\u0131ğd",
    "aaa",
    "aaaa",
    "aaaaa",
    "\tNa",
    "user0500",
    "USER05",
    "person 50",
    "@acme.test",
    "acme",
    "nomatch-anywhere",
    "xyz",
    "an",
    "a",
]
# SQLite takes NUL characters in text (PostgreSQL refuses them; pages refuse them with 400).
NUL_TEXTS = ["ann\x00lee", "\x00\x00\x00"]


@pytest.fixture
def people(acme: Partner, globex: Partner) -> list[User]:
    made = []
    for partner in (acme, globex):
        with partner_scope(partner):
            for email, name in PEOPLE:
                address = email.replace("@acme.test", f"@{partner.slug}.test")
                made.append(User(email=address, display_name=name, role=Role.BASIC))
                db.session.add(made[-1])
        db.session.commit()
    return made


def found(partner: Partner, text: str, *, indexed: bool) -> list[str]:
    """The emails of the partner's users the search finds, by LIKE alone or through the index."""
    with partner_scope(partner):
        stmt = sa.select(User.email).where(search.matches())
        if indexed and search.indexed(text):  # else the search reads the partner's rows
            stmt = stmt.where(search.among_candidates(search.dialect()))
        return sorted(db.session.execute(stmt, search.params(text)).scalars())


def listed(partner: Partner, text: str, **args: str) -> tuple[int, list[str]]:
    """What the admin list shows for the search: the count and the emails of the page."""
    with partner_scope(partner):
        page = search_users(UserQuery.from_args({"q": text, **args}), per_page=100)
        return page.total, [user.email for user in page.items]


def sqlite_only() -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the FTS5 table is SQLite's; PostgreSQL has its function (0018)")


def postgres_only() -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the function over the trigram indexes is PostgreSQL's (0018)")


def function_ids(partner_id: str, scope: str, text: str, max_rows: int | None = None) -> set[int]:
    """What `user_search_ids` returns for `text` to the app's role, in a transaction whose
    settings say `partner_id` and `scope` (set here, on a connection of the app's pool that
    the scope hook does not touch)."""
    pattern = search.contains_pattern(text)
    conn = db.engine.raw_connection()
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('portal.partner_id', %s, true), "
                "set_config('portal.scope', %s, true)",
                (partner_id, scope),
            )
            cursor.execute(
                "SELECT * FROM user_search_ids(%s, %s, %s)",
                (pattern.lower(), pattern, max_rows),
            )
            return {row[0] for row in cursor.fetchall()}
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("text", TEXTS + NUL_TEXTS)
def test_the_index_finds_exactly_what_like_finds(people, acme: Partner, text: str) -> None:
    if "\x00" in text:
        sqlite_only()  # PostgreSQL refuses NUL in text (the pages refuse it first: 400)
    assert found(acme, text, indexed=True) == found(acme, text, indexed=False)


@pytest.mark.parametrize("text", TEXTS)
def test_the_function_returns_exactly_what_like_finds(people, acme: Partner, text: str) -> None:
    """PostgreSQL: the function's ids are the partner's users LIKE finds, no more, no fewer,
    whatever the text holds (wildcards, escapes, quotes, case beyond ASCII)."""
    postgres_only()
    with partner_scope(acme):
        expected = db.session.execute(
            sa.select(User.id).where(search.matches()), search.params(text)
        ).scalars()
    assert function_ids(str(acme.id), "partner", text) == set(expected)


@pytest.mark.parametrize("few", [search.FEW, 1])
@pytest.mark.parametrize("text", TEXTS)
def test_the_list_shows_what_like_finds(
    people, acme: Partner, monkeypatch, few: int, text: str
) -> None:
    """Through the index (few candidates) or reading the partner's rows (many): the same list,
    on both databases, in the order asked for."""
    monkeypatch.setattr(search, "FEW", few)
    expected = found(acme, text, indexed=False)
    total, emails = listed(acme, text)
    assert (total, emails) == (len(expected), expected)
    _, backwards = listed(acme, text, direction="desc")
    assert backwards == expected[::-1]
    with partner_scope(acme):
        by_id = [u.email for u in users_after(UserQuery.from_args({"q": text}), None, 100)]
    assert sorted(by_id) == expected


@pytest.mark.parametrize("text", NUL_TEXTS)
def test_a_nul_character_is_searched_the_plain_way(people, acme: Partner, text: str) -> None:
    """FTS5 refuses a query with a NUL ("unterminated string"); whatever SQLite's LIKE makes of
    it (it reads the pattern up to the NUL), the list shows the same."""
    sqlite_only()
    with partner_scope(acme):
        assert not search.indexed(text)
    expected = found(acme, text, indexed=False)
    assert listed(acme, text) == (len(expected), expected)


SEARCH = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples on every run
)
# Pieces of the stored values and the characters that mean something to LIKE or FTS5.
pieces = st.sampled_from([v for pair in PEOPLE for v in pair]).flatmap(
    lambda value: st.tuples(st.integers(0, len(value)), st.integers(0, len(value))).map(
        lambda ends: value[min(ends) : max(ends)]
    )
)
specials = st.text(alphabet="%_\\\"'*^:(){}-+ aAnNéÉİ\u0131i.@0\x00", min_size=1, max_size=6)
search_texts = st.lists(st.one_of(pieces, specials), min_size=1, max_size=3).map("".join)


@SEARCH
@given(text=search_texts)
@example(text='"" OR ""')
@example(text="ann*")
@example(text="NOT ann")
def test_any_text_finds_exactly_what_like_finds(people, acme: Partner, text: str) -> None:
    text = text.strip()[:100]  # as the list reads it from the query string
    if db.engine.dialect.name == "postgresql":
        text = text.replace("\x00", "")  # refused there (and by the pages)
    assert found(acme, text, indexed=True) == found(acme, text, indexed=False)


def test_a_search_reads_only_its_own_partners_users(
    app: Flask, acme: Partner, globex: Partner, acme_admin: User, people
) -> None:
    """Two partners with the same people: each finds only its own, through the index too."""
    for partner in (acme, globex):
        total, emails = listed(partner, "user050")
        assert total == 3
        assert emails == [
            f"{name}@{partner.slug}.test" for name in ("person5", "user0500", "user0501")
        ]
    page = logged_in(app, acme_admin).get("/admin/users/?q=user0500").text
    assert "user0500@acme.test" in page and "person5@acme.test" in page
    assert "globex.test" not in page


def test_the_partner_filter_holds_whatever_the_index_answers(
    people, acme: Partner, monkeypatch
) -> None:
    """The index's partner term is a shortcut: without it, the users query still filters."""
    sqlite_only()
    monkeypatch.setattr(search, "scoped_partner_id", lambda: None)
    with partner_scope(acme):
        everyone = db.session.execute(
            sa.select(search.users_search.c.rowid).where(
                search.users_search.c.users_search.match(search._index_query("user0500"))
            )
        ).scalars()
        assert len(list(everyone)) == 4  # both partners' candidates
    assert found(acme, "user0500", indexed=True) == ["person5@acme.test", "user0500@acme.test"]
    assert listed(acme, "user0500") == (2, ["person5@acme.test", "user0500@acme.test"])


def candidates(text: str) -> set[int]:
    """The user ids the index holds for `text`, across partners (the index itself)."""
    match = search.users_search.c.users_search.match(f'"{text}"')
    stmt = sa.select(search.users_search.c.rowid).where(match)
    return set(db.session.execute(stmt).scalars())


def test_the_index_follows_every_change_of_the_users(acme: Partner, globex: Partner) -> None:
    sqlite_only()
    with partner_scope(acme):
        user = User(email="first@acme.test", display_name="Kim Novak", role=Role.BASIC)
        db.session.add(user)
        db.session.commit()
        assert candidates("first") == {user.id} and candidates("novak") == {user.id}
        user.email, user.display_name = "second@acme.test", "Kim Basinger"
        db.session.commit()
        assert candidates("first") == set() and candidates("novak") == set()
        assert candidates("second") == {user.id} and candidates("basinger") == {user.id}
        db.session.execute(sa.update(User).values(display_name="Kim Wilde"))  # in bulk too
        assert candidates("basinger") == set() and candidates("wilde") == {user.id}
        db.session.delete(user)
        db.session.commit()
        assert candidates("second") == candidates("wilde") == set()
    with partner_scope(globex):
        kept = User(email="gone@globex.test", display_name="Gone Girl", role=Role.BASIC)
        db.session.add(kept)
        db.session.commit()
    assert candidates("gone") == {kept.id}
    db.session.delete(rows(Partner, slug="globex")[0])  # its users go with it
    db.session.commit()
    assert candidates("gone") == set()


def test_the_head_schema_keeps_the_index_in_step(data: Flask, owner_engine) -> None:
    """A later migration that rebuilds `users` drops its triggers with it: they must be back."""
    sqlite_only()
    with owner_engine[0].connect() as conn:
        triggers = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'users'")
        ).scalars()
        assert {"users_search_insert", "users_search_update", "users_search_delete"} <= set(
            triggers
        )
        conn.execute(sa.text("INSERT INTO users_search (users_search) VALUES ('integrity-check')"))


def test_short_texts_keep_the_plain_search(acme: Partner) -> None:
    with partner_scope(acme):
        assert not search.indexed("ab")
        assert not search.indexed("abc\x00")  # FTS5 would stop reading its query there
        assert search.indexed("abc")
    # Outside a partner's scope PostgreSQL's function answers nothing: read the plain way.
    assert search.indexed("abc") == (db.engine.dialect.name == "sqlite")


@pytest.mark.parametrize(
    ("path", "searches"),
    [("/admin/users/?q=user0500", [1]), ("/admin/users/?q=nomatch-anywhere", [1, 1])],
)
def test_a_search_page_keeps_the_list_budget(
    app: Flask, acme_admin: User, people, path: str, searches: list[int]
) -> None:
    """The session, then the page with its count and how many candidates the index found:
    two statements, searching the index once (the page, its count and the candidates' count
    read the same candidates). A page with no row to carry that count counts the candidates
    on their own: three, the admin lists' budget."""
    admin = logged_in(app, acme_admin)
    admin.get(path)  # this process learns the partner's id and configuration
    with counted(app) as statements:
        assert admin.get(path).status_code == 200
    assert len(statements) == 1 + len(searches), statements.report()
    index = "users_search MATCH" if db.engine.dialect.name == "sqlite" else "user_search_ids("
    assert [s.count(index) for s in statements if index in s] == searches


def test_the_migration_indexes_existing_users_and_comes_undone(make_app, tmp_path) -> None:
    """On SQLite: 0017 indexes the users already there; downgraded, nothing of it is left;
    upgraded again, the index is whole. (PostgreSQL: it does nothing either way.)"""
    app = make_app(fresh=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/0016.sqlite3")
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="0016_perf")
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO partners (id, slug, name, status, theme_settings, "
                    "session_policy_settings, created_at) VALUES "
                    "(1, 'acme', 'Acme', 'active', '{}', '{}', '2026-01-01')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, partner_id, email, display_name, role, status, "
                    "is_support, created_at) VALUES "
                    "(7, 1, 'kim@acme.test', 'Kim Novak', 'basic', 'active', false, '2026-01-01')"
                )
            )

        def schema() -> set[str]:
            with db.engine.connect() as conn:
                names = conn.execute(sa.text("SELECT name FROM sqlite_master")).scalars()
                return {name for name in names if name.startswith("users_search")}

        def found(text: str) -> list[int]:
            with db.engine.connect() as conn:
                return list(
                    conn.execute(
                        sa.text("SELECT rowid FROM users_search WHERE users_search MATCH :q"),
                        {"q": f'"{text}"'},
                    ).scalars()
                )

        upgrade(directory=MIGRATIONS)
        assert found("novak") == [7] and found("kim@acme") == [7]
        downgrade(directory=MIGRATIONS, revision="0016_perf")
        assert schema() == set()
        with db.engine.begin() as conn:  # users change while there is no index
            conn.execute(sa.text("UPDATE users SET display_name = 'Kim Wilde' WHERE id = 7"))
        upgrade(directory=MIGRATIONS)
        assert schema() >= {"users_search", "users_search_insert", "users_search_delete"}
        assert found("novak") == [] and found("wilde") == [7]
        db.engine.dispose()


def test_any_text_gets_an_answer_not_an_error(app: Flask, acme_admin: User, people) -> None:
    admin = logged_in(app, acme_admin)
    for text in ("%22%22", "a%5C", "%27%3B--", "%2A%5E"):
        response = admin.get(f"/admin/users/?q={text}")
        assert response.status_code == 200 and "0 users match" in response.text, text
    near = admin.get("/admin/users/?q=NEAR(").text
    assert "near@acme.test" in near and "and.or@acme.test" not in near
    refused = admin.get("/admin/users/?q=ann%00lee")  # refused before any search, by design
    assert refused.status_code == 400 and "not allowed (NUL)" in refused.text


def like_ids(partner: Partner, text: str) -> set[int]:
    """The ids of the partner's users the plain LIKE conditions find for `text`."""
    with partner_scope(partner):
        stmt = sa.select(User.id).where(search.matches())
        return set(db.session.execute(stmt, search.params(text)).scalars())


def test_the_function_answers_only_for_the_partner_in_scope(
    people, acme: Partner, globex: Partner
) -> None:
    """PostgreSQL: the function reads the partner from the transaction's setting alone and
    returns its users only; the platform scope, no partner, or `none`: nothing. Its owner
    escapes row-level security (as in production), so this is the function's own filter."""
    postgres_only()
    owner_escapes = db.session.execute(sa.select(search._function_escapes_policies()))
    assert owner_escapes.scalar_one()
    for partner in (acme, globex):
        everyone = like_ids(partner, "@")
        assert len(everyone) == len(PEOPLE)
        assert function_ids(str(partner.id), "partner", "@") == everyone
        assert function_ids(str(partner.id), "partner", "user0500") == like_ids(partner, "user0500")
        assert len(like_ids(partner, "user0500")) == 2
    assert not like_ids(acme, "@") & like_ids(globex, "@")
    for partner_id, scope in [
        (str(acme.id), "all"),  # the platform scope: the function is not for it
        ("", "all"),
        ("", "partner"),
        ("", "none"),
        (str(acme.id), "none"),
        (str(acme.id), ""),
    ]:
        assert function_ids(partner_id, scope, "@") == set(), (partner_id, scope)
    assert len(function_ids(str(acme.id), "partner", "@", max_rows=3)) == 3


def test_the_function_is_fenced_in(acme: Partner) -> None:
    """PostgreSQL: SECURITY DEFINER with a fixed search_path (pg_temp last: the app's role may
    create temporary tables), executable by the app's role, not by PUBLIC."""
    postgres_only()
    with raw_sql(), unscoped():
        row = db.session.execute(
            sa.text(
                "SELECT p.prosecdef, p.proconfig, "
                "has_function_privilege(current_user, p.oid, 'EXECUTE'), "
                "EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) "
                "FROM pg_proc p WHERE p.oid = "
                "'public.user_search_ids(text, text, integer)'::regprocedure"
            )
        ).one()
    secdef, config, app_may, public_may = row
    assert secdef and app_may and not public_may
    assert "search_path=pg_catalog, pg_temp" in config


@pytest.fixture
def search_function_held_to_the_policies(owner_engine) -> Iterator[None]:
    """The function owned by the ordinary table owner (not handed to its BYPASSRLS role)."""
    postgres_only()
    superuser = owner_engine[0]
    owner = f"{sa.engine.make_url(owner_engine[1]).username}_owner"
    with superuser.begin() as conn:
        conn.execute(
            sa.text(
                f'ALTER FUNCTION public.user_search_ids(text, text, integer) OWNER TO "{owner}"'
            )
        )
    try:
        yield
    finally:
        with superuser.begin() as conn:
            hand_search_function_over(conn, owner)


def test_a_function_held_to_the_policies_is_not_used(
    app: Flask,
    acme_admin: User,
    people,
    acme: Partner,
    owner_engine,
    search_function_held_to_the_policies,
) -> None:
    """Owned by a role held to row-level security the function is correct but as slow as the
    plain search: the count says "many" without running it, and the page reads as before."""
    assert function_ids(str(acme.id), "partner", "user0500") == like_ids(acme, "user0500")
    with partner_scope(acme):
        count = sa.select(search.candidate_count("postgresql"))
        assert db.session.execute(count, search.params("user0500")).scalar_one() == search.FEW
    admin = logged_in(app, acme_admin)
    with function_that_fails_when_run(owner_engine[0]):
        for path in ("/admin/users/?q=user0500", "/admin/users/?q=nomatch-anywhere"):
            admin.get(path)
            with counted(app) as statements:
                page = admin.get(path)
            assert page.status_code == 200, page.text
            # The page through the index finds nobody (the function's condition says no) and
            # the count on its own says "many" (the CASE's other branch): both name the
            # function and neither runs it. The page that follows reads the partner's rows.
            naming = [s.split(None, 1)[0] for s in statements if "user_search_ids(" in s]
            assert naming == ["WITH", "SELECT"]
            assert "user_search_ids(" not in statements[-1]
    listed = admin.get("/admin/users/?q=user0500").text
    assert "user0500@acme.test" in listed and "person5@acme.test" in listed
    assert "globex.test" not in listed


@contextmanager
def function_that_fails_when_run(superuser: sa.Engine) -> Iterator[None]:
    """`user_search_ids` replaced (same signature, owner and grants) by one that fails if a
    statement ever runs it; the original put back after."""
    signature = "public.user_search_ids(text, text, integer)"
    with superuser.begin() as conn:
        original = conn.execute(
            sa.text(f"SELECT pg_get_functiondef('{signature}'::regprocedure)")
        ).scalar_one()
        conn.execute(
            sa.text(
                "CREATE OR REPLACE FUNCTION public.user_search_ids("
                "email_pattern text, name_pattern text, max_rows integer) RETURNS SETOF integer "
                "LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 100 "
                "AS $$ BEGIN RAISE EXCEPTION 'user_search_ids was run'; END $$"
            )
        )
    try:
        yield
    finally:
        with superuser.begin() as conn:
            conn.exec_driver_sql(original)


def test_the_function_migration_comes_undone_on_postgresql(
    data: Flask, make_app, owner_engine
) -> None:
    """PostgreSQL: 0018 downgraded drops the function; upgraded again it is back, executable
    by the roles that read users (the app's), not by PUBLIC."""
    postgres_only()
    superuser, app_url = owner_engine
    app_role = sa.engine.make_url(app_url).username
    owner_url = sa.engine.make_url(app_url).set(username=f"{app_role}_owner")

    def function() -> tuple | None:
        with superuser.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT has_function_privilege(:app, p.oid, 'EXECUTE'), "
                    "EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) "
                    "FROM pg_proc p WHERE p.proname = 'user_search_ids'"
                ),
                {"app": app_role},
            ).one_or_none()

    migrator = make_app(
        fresh=True, SQLALCHEMY_DATABASE_URI=owner_url.render_as_string(hide_password=False)
    )
    try:
        with migrator.app_context():
            downgrade(directory=MIGRATIONS, revision="0017_user_search")
            assert function() is None
            upgrade(directory=MIGRATIONS)
            assert function() == (True, False)
            db.engine.dispose()
    finally:
        with superuser.begin() as conn:
            hand_search_function_over(conn, f"{app_role}_owner")


def test_a_count_made_before_the_read_never_truncates_it(
    people, acme: Partner, monkeypatch
) -> None:
    """Whatever the candidates were counted at (users may be added between that count and the
    read), the read that follows it takes every candidate, not the first few: the API's
    cursor pages and a list's count past its last page read after such a count."""
    monkeypatch.setattr(search, "FEW", 1)  # the first-few page says "many" and is not used
    with partner_scope(acme):
        # As if the count had found fewer than FEW (before users were added).
        monkeypatch.setattr(queries, "_through_index", lambda _query, _values: True)
        query = UserQuery.from_args({"q": "user050"})
        by_id = [u.email for u in users_after(query, None, 100)]
        page = search_users(UserQuery.from_args({"q": "user050", "page": "9"}), per_page=1)
    expected = found(acme, "user050", indexed=False)
    assert len(expected) > 1
    assert sorted(by_id) == expected
    assert page.total == len(expected)


def test_the_trigram_indexes_take_new_entries_at_once_on_postgresql(
    data: Flask, make_app, owner_engine
) -> None:
    """PostgreSQL: 0021 turns the pending list of both trigram indexes off (a search read all
    of it: 15.8 ms instead of 2.6 at 100,000 users); downgraded, the default is back."""
    postgres_only()
    superuser, app_url = owner_engine
    owner_url = sa.engine.make_url(app_url).set(
        username=f"{sa.engine.make_url(app_url).username}_owner"
    )

    def options() -> dict[str, list[str] | None]:
        with superuser.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT relname, reloptions FROM pg_class"
                    " WHERE relname IN ('ix_users_email_trgm', 'ix_users_display_name_trgm')"
                )
            ).all()
        return dict(found)

    assert options() == {
        "ix_users_email_trgm": ["fastupdate=off"],
        "ix_users_display_name_trgm": ["fastupdate=off"],
    }
    migrator = make_app(
        fresh=True, SQLALCHEMY_DATABASE_URI=owner_url.render_as_string(hide_password=False)
    )
    with migrator.app_context():
        downgrade(directory=MIGRATIONS, revision="0020_audit_actor_index")
        assert options() == {"ix_users_email_trgm": None, "ix_users_display_name_trgm": None}
        upgrade(directory=MIGRATIONS)
        assert set(map(tuple, options().values())) == {("fastupdate=off",)}
        db.engine.dispose()
