"""Connections to PostgreSQL for the record and control stores: one pool per store, each
connection set to the store's own schema, with the statement timeout of the config.

Versioned schemas: each store keeps its version in a table of its schema, and migrates an
older one forward under an advisory lock (several replicas may open the same schema at
once), or refuses a newer one, naming both versions.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from shards.config import PostgresConfig
from shards.errors import LayoutMismatch, StorageUnavailable


def open_pool(cfg: PostgresConfig, dsn: str, schema: str, name: str) -> Any:
    """A psycopg ConnectionPool whose connections use `schema` (created if missing) first
    on their search_path. `name` shows in pg_stat_activity (application_name)."""
    import psycopg
    from psycopg_pool import ConnectionPool

    kwargs: dict[str, Any] = {
        "connect_timeout": max(1, int(cfg.connect_timeout_s)),
        "application_name": f"engram {name}"[:63],
        "options": f"-c statement_timeout={int(cfg.statement_timeout_s * 1000)}",
    }
    password = cfg.password()
    if password is not None:
        kwargs["password"] = password

    def configure(conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET search_path TO {quote_ident(schema)}, public")
        conn.commit()

    try:
        with psycopg.connect(dsn, autocommit=True, **kwargs) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(f"cannot reach PostgreSQL at {redacted(dsn)}: {exc}") from exc
    # check: a connection is tried as it leaves the pool (one round trip), so one broken by a
    # server restart is replaced there instead of failing the request that drew it.
    pool = ConnectionPool(dsn, kwargs=kwargs, min_size=cfg.pool_min_size, max_size=cfg.pool_max_size,
                          configure=configure, check=ConnectionPool.check_connection,
                          timeout=cfg.connect_timeout_s, name=name, open=False)
    pool.open(wait=cfg.pool_min_size > 0, timeout=cfg.connect_timeout_s)
    return pool


def migrate(pool: Any, store: str, migrations: Sequence[str]) -> int:
    """Bring the pool's schema to version len(migrations): migrations[i] takes version i to
    i + 1. Answers the version found before. A schema newer than this code is refused."""
    target = len(migrations)
    with pool.connection() as conn, conn.transaction():
        # One opener migrates at a time; the others find the work done.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':migrate'))")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (store TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version WHERE store = %s", (store,)).fetchone()
        found = 0 if row is None else int(row[0])
        if found > target:
            raise LayoutMismatch(
                f"the {store} schema {conn.execute('SELECT current_schema()').fetchone()[0]} is at "
                f"version {found}, and this code knows versions up to {target}: run the newer "
                "Engram that wrote it", "schema_version")
        for version in range(found, target):
            conn.execute(migrations[version])
        if found != target:
            conn.execute("INSERT INTO schema_version (store, version) VALUES (%s, %s) "
                         "ON CONFLICT (store) DO UPDATE SET version = excluded.version", (store, target))
    return found


def open_migrated(cfg: PostgresConfig, schema: str, store: str, migrations: Sequence[str],
                  role: str) -> tuple[Any, str]:
    """(pool, location) for a store of the control schema (keys and map, webhooks): the pool
    opened on `schema` and migrated to this code's version; the pool closed again if the
    migration fails. `role` names the store in errors ("control", "webhooks")."""
    location = f"PostgreSQL schema {schema} at {redacted(cfg.dsn)}"
    pool = open_pool(cfg, cfg.dsn, schema, store)
    try:
        with unavailable_as(role, location):
            migrate(pool, store, migrations)
    except BaseException:
        pool.close()
        raise
    return pool, location


@contextmanager
def unavailable_as(role: str, where: str) -> Iterator[None]:
    """psycopg's errors for a lost or overloaded server (a broken connection, no free
    connection in the pool, a statement timeout) as StorageUnavailable, which callers retry."""
    import psycopg

    try:
        yield
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(f"{role} store ({where}) unavailable: {exc}", role) from exc


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def redacted(dsn: str) -> str:
    """The DSN for a message: any password in it replaced."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", re.sub(r"(password=)\S+", r"\1***", dsn))
