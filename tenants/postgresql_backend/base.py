"""django-tenants' PostgreSQL backend, minus two round trips per request that a pooled connection can skip.

1. `SET search_path` when the pooled connection already has it.

django-tenants issues `SET search_path` on the first cursor after every `set_tenant()` and after every
checkout from the pool, that is at least once per request: a round trip to Postgres each time, about
a fifth of the round trips of a typical API request. A pooled connection keeps its session settings
between checkouts, so this backend remembers, on the psycopg connection itself, the search_path it
knows the session has, and skips the `SET` when the request wants that same one.

It only remembers what cannot be undone behind its back:
- a `SET` made outside a transaction (autocommit) is committed at once; one made inside a transaction
  can be rolled back, so it makes the remembered value unknown instead;
- a statement that may change the search_path by other means (`set_config`, `RESET`/`DISCARD`, the
  clone function, a hand-written `SET search_path`) makes it unknown too;
- a new connection from the pool knows nothing.
Unknown means the next cursor sets it, as django-tenants always did.

2. The pool's health check (CONN_HEALTH_CHECKS) as it lends a connection out. Django's is psycopg's
`check_connection`, an empty statement: one more round trip per checkout. A connection that Postgres
dropped (a restart, a terminated backend) has its socket closed, with Postgres' goodbye in it, so the
socket has something to read; an idle pooled connection that is fine has nothing. This backend asks
the socket (poll with no wait, no round trip) and makes the round trip only when it has something.
"""

import contextlib
import re
import select

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from django_tenants.utils import get_limit_set_calls
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

# The attribute on the psycopg connection that holds the session's known search_path (a tuple).
KNOWN_SEARCH_PATH = "_peerlearn_search_path"
_MAY_CHANGE_SEARCH_PATH = re.compile(
    r"\bset\s+(?:session\s+|local\s+)?search_path|set_config|clone_schema|\breset\b|\bdiscard\b",
    re.IGNORECASE,
)


def _may_change_search_path(sql) -> bool:
    return not isinstance(sql, str) or _MAY_CHANGE_SEARCH_PATH.search(sql) is not None


def check_connection_if_disturbed(conn) -> None:
    """The pool's `check`: psycopg's check_connection (a round trip) only when the socket has something
    to read (Postgres closed it or sent something unasked); raises when the connection is unusable."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
        disturbed = bool(poller.poll(0))
    except Exception:  # a closed connection has no file descriptor
        disturbed = True
    if disturbed:
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            _discard_broken_idle(conn)
            raise


def _discard_broken_idle(conn) -> None:
    """One broken connection means the server went away (a restart): test every idle one now.

    psycopg's pool hands the waiting request the next idle connection only after a backoff (1 s,
    2 s, 4 s …), and after a restart every idle connection is dead: with five of them the request
    would wait past the pool's timeout. `ConnectionPool.check()` tests them all at once (with
    psycopg's own check, not this function), drops the dead and opens replacements, so the request's
    next attempt gets a live one (docs/security.md#failures)."""
    pool = getattr(conn, "_pool", None)
    if pool is not None:
        # The server may still be down: the request's own retries carry on.
        with contextlib.suppress(Exception):
            pool.check()


class _Watching:
    """Cursor wrapper mixin: statements that may change the search_path make the known value unknown."""

    def execute(self, sql, params=None):
        try:
            return super().execute(sql, params)
        finally:
            if _may_change_search_path(sql):
                self.db.forget_session_search_path()

    def executemany(self, sql, param_list):
        try:
            return super().executemany(sql, param_list)
        finally:
            if _may_change_search_path(sql):
                self.db.forget_session_search_path()

    def callproc(self, procname, params=None, kparams=None):
        try:
            return super().callproc(procname, params, kparams)
        finally:
            self.db.forget_session_search_path()


class WatchingCursorWrapper(_Watching, CursorWrapper):
    pass


class WatchingCursorDebugWrapper(_Watching, CursorDebugWrapper):
    pass


class DatabaseWrapper(TenantDatabaseWrapper):
    @property
    def pool(self):
        # Django's own property (django/db/backends/postgresql/base.py, 5.2) with one change: the
        # health check is check_connection_if_disturbed instead of ConnectionPool.check_connection.
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            if pool_options is True:
                pool_options = {}
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # Django sets it properly later on
            enable_checks = self.settings_dict["CONN_HEALTH_CHECKS"]
            pool = ConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=check_connection_if_disturbed if enable_checks else None,
                **pool_options,
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]

    def make_cursor(self, cursor):
        return WatchingCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return WatchingCursorDebugWrapper(cursor, self)

    def forget_session_search_path(self) -> None:
        """The session's search_path may have changed: the next cursor sets it again."""
        if self._setting_search_path:
            return  # our own SET, accounted for in _handle_search_path()
        self.search_path_set_schemas = None
        if self.connection is not None:
            setattr(self.connection, KNOWN_SEARCH_PATH, None)

    def _handle_search_path(self, cursor=None):
        if self._setting_search_path or self.search_path_set_schemas:
            return super()._handle_search_path(cursor)  # re-entered, or already set on this checkout
        if not get_limit_set_calls():  # told to set it before every statement
            self.forget_session_search_path()
            return super()._handle_search_path(cursor)
        raw = self.connection
        wanted = self._get_cursor_search_paths()
        if raw is not None and getattr(raw, KNOWN_SEARCH_PATH, None) == tuple(wanted):
            self.search_path_set_schemas = wanted
            return None
        super()._handle_search_path(cursor)
        if raw is not None:
            committed = (
                self.search_path_set_schemas is not None
                and raw.info.transaction_status == TransactionStatus.IDLE
            )
            setattr(raw, KNOWN_SEARCH_PATH, tuple(self.search_path_set_schemas) if committed else None)
        return None
