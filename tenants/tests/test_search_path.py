"""The database backend: `SET search_path` only when the pooled connection lacks it, a pool health check
without a round trip, and never a query in another institution's schema."""

import select
import tempfile
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from tenants.postgresql_backend.base import KNOWN_SEARCH_PATH, check_connection_if_disturbed


@pytest.fixture
def wrapper(db, django_db_blocker) -> Iterator:
    """A connection of its own, outside the test's transaction (autocommit, as in a request), on the
    same pool as every other connection of this process. It only reads."""
    own = connections.create_connection("default")
    with django_db_blocker.unblock():
        try:
            yield own
        finally:
            own.close()


def _search_path(wrapper) -> str:
    with wrapper.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return cursor.fetchone()[0]


def _sets(queries) -> int:
    return sum(1 for query in queries.captured_queries if query["sql"].startswith("SET search_path"))


def _request(wrapper, institution) -> tuple[object, int, str]:
    """What a request does: check a connection out, select the institution, query, give it back.
    Returns the psycopg connection it had, how many SETs it sent, and the search_path it ran with."""
    wrapper.set_tenant(institution)
    with CaptureQueriesContext(wrapper) as queries:
        path = _search_path(wrapper)
    raw = wrapper.connection
    wrapper.close()
    return raw, _sets(queries), path


def test_a_pooled_connection_that_has_the_search_path_gets_no_set(wrapper, institution_a):
    seen: dict[int, int] = {}
    for _ in range(8):
        raw, sets, path = _request(wrapper, institution_a)
        assert path == f"{institution_a.schema_name}, public"
        # At most the first time this connection serves the institution is it told; never again after.
        assert sets <= (0 if id(raw) in seen else 1)
        seen[id(raw)] = seen.get(id(raw), 0) + 1
    assert max(seen.values()) > 1  # the pool did lend a connection twice


def test_switching_institutions_sets_it_every_time(wrapper, institution_a, institution_b):
    for institution in (institution_a, institution_b, institution_a, institution_b, institution_a):
        *_, path = _request(wrapper, institution)
        assert path == f"{institution.schema_name}, public"


def test_a_set_that_was_rolled_back_is_not_trusted(wrapper, institution_a, institution_b):
    _request(wrapper, institution_a)
    _request(wrapper, institution_a)  # every pooled connection now knows A
    # B is selected inside a transaction that is then rolled back: Postgres undoes the SET.
    wrapper.set_tenant(institution_b)
    wrapper.set_autocommit(False)
    assert _search_path(wrapper) == f"{institution_b.schema_name}, public"
    raw = wrapper.connection
    wrapper.rollback()
    wrapper.set_autocommit(True)
    assert getattr(raw, KNOWN_SEARCH_PATH) is None
    assert _search_path(wrapper) == f"{institution_b.schema_name}, public"  # set again, not assumed
    wrapper.set_tenant(institution_a)
    assert _search_path(wrapper) == f"{institution_a.schema_name}, public"


def test_a_set_inside_a_committed_transaction_is_set_again_later(wrapper, institution_a, institution_b):
    wrapper.set_tenant(institution_b)
    wrapper.set_autocommit(False)
    _search_path(wrapper)
    raw = wrapper.connection
    wrapper.commit()
    wrapper.set_autocommit(True)
    assert getattr(raw, KNOWN_SEARCH_PATH) is None  # unknown while the transaction was open
    wrapper.set_tenant(institution_a)
    assert _search_path(wrapper) == f"{institution_a.schema_name}, public"


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT set_config('search_path', 'public', false)",
        "SET search_path = public",
        "RESET search_path",
    ],
)
def test_a_statement_that_changes_it_behind_the_backend_is_noticed(wrapper, institution_a, statement):
    _request(wrapper, institution_a)
    wrapper.set_tenant(institution_a)
    with wrapper.cursor() as cursor:
        cursor.execute(statement)
    raw = wrapper.connection
    assert getattr(raw, KNOWN_SEARCH_PATH) is None
    assert _search_path(wrapper) == f"{institution_a.schema_name}, public"
    wrapper.close()
    # The next checkout of that connection is told again as well.
    for _ in range(6):
        *_, path = _request(wrapper, institution_a)
        assert path == f"{institution_a.schema_name}, public"


def _libpq_messages(conn: psycopg.Connection, action) -> str:
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            action()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        return trace.read()


def test_the_pool_check_costs_no_round_trip_on_a_healthy_connection(wrapper):
    params = wrapper.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("SELECT 1")
        assert _libpq_messages(conn, lambda: check_connection_if_disturbed(conn)) == ""


def test_the_pool_check_catches_a_connection_postgres_dropped(wrapper):
    params = wrapper.get_connection_params()
    with (
        psycopg.connect(**params, autocommit=True) as victim,
        psycopg.connect(**params, autocommit=True) as admin,
    ):
        admin.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
        # Postgres says goodbye and closes the socket: wait for that, then the check must refuse it.
        assert select.select([victim.fileno()], [], [], 10)[0], "Postgres did not close the connection"
        with pytest.raises(psycopg.OperationalError):
            check_connection_if_disturbed(victim)
