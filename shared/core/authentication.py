"""DRF's token authentication, with the lookup's SQL built once per process.

Every API request made with a token looks it up with its user. The ORM spends several times longer
building that query than Postgres spends answering it, and the query is the same every time but for
the key: its SQL is built once (by the ORM, from the same queryset DRF uses), then each request only
sends it and makes the two objects from the row, as the ORM would (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

_KEY_PLACEHOLDER = "token-key-placeholder"


@dataclass(frozen=True)
class _Statement:
    sql: str
    converters: tuple  # the ORM's own, by column: ((position, (functions, expression)), …)
    token: slice
    token_fields: tuple[str, ...]
    user: slice
    user_fields: tuple[str, ...]


def _columns(compiler, klass_info: dict) -> tuple[slice, tuple[str, ...]]:
    # As the ORM reads a model (and a select_related one) from its columns of the row.
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    return slice(start, end), tuple(column[0].target.attname for column in compiler.select[start:end])


@lru_cache(maxsize=1)
def _statement() -> _Statement | None:
    """The lookup's SQL and how its row becomes a token and a user; None if the ORM must run it."""
    queryset = Token.objects.select_related("user").filter(key=_KEY_PLACEHOLDER)
    compiler = queryset.query.get_compiler(DEFAULT_DB_ALIAS)
    sql, params = compiler.as_sql()
    if list(params) != [_KEY_PLACEHOLDER]:
        return None  # a parameter other than the key
    converters = tuple(compiler.get_converters([column for column, _, _ in compiler.select]).items())
    (user_info,) = compiler.klass_info["related_klass_infos"]
    token_columns, token_fields = _columns(compiler, compiler.klass_info)
    user_columns, user_fields = _columns(compiler, user_info)
    return _Statement(sql, converters, token_columns, token_fields, user_columns, user_fields)


def token_with_user(key: str) -> Token | None:
    """`Token.objects.select_related("user").get(key=key)`, or None when there is no such token."""
    if "\x00" in key:
        return None  # no key has one, and Postgres refuses such a string
    statement = _statement()
    if statement is None:
        return Token.objects.select_related("user").filter(key=key).first()
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, [key])
        row = cursor.fetchone()
    if row is None:
        return None
    if statement.converters:
        row = list(row)
        for position, (functions, expression) in statement.converters:
            for convert in functions:
                row[position] = convert(row[position], expression, connection)
    user_model = Token.user.field.related_model
    token = Token.from_db(DEFAULT_DB_ALIAS, statement.token_fields, row[statement.token])
    user = user_model.from_db(DEFAULT_DB_ALIAS, statement.user_fields, row[statement.user])
    # What select_related leaves behind: token.user, and user.auth_token, without another query.
    Token.user.field.set_cached_value(token, user)
    Token.user.field.remote_field.set_cached_value(user, token)
    return token


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, exactly as DRF's, with the lookup above."""

    def authenticate_credentials(self, key: str):
        token = token_with_user(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token
