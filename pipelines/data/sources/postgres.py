"""A PostgreSQL table of a use case's rows, read incrementally: one data interval's window of
its time column.

The query selects ``start <= <time column> < end`` only, so each run reads exactly its interval and
a re-run reads the same rows. The table name is quoted as an identifier, never formatted into
SQL. In the DAG the URI comes from the Airflow Connection ``conveyor_telemetry_db``; on the CLI
it is given directly.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from pipelines.data.conform import SourceError
from pipelines.usecase import TableSpec

URI_SCHEMES = ("postgresql", "postgres")


def is_postgres_uri(source: str) -> bool:
    return urlsplit(str(source)).scheme in URI_SCHEMES


def redact(uri: str) -> str:
    """The URI without its password, for manifests and messages."""
    parts = urlsplit(uri)
    netloc = re.sub(r":[^@/]*@", ":***@", parts.netloc)
    return urlunsplit(parts._replace(netloc=netloc))


def read_window(
    uri: str, sql_table: str, start: dt.datetime, end: dt.datetime, spec: TableSpec
) -> pa.Table:
    """The columns of ``spec`` in the rows of ``sql_table`` with ``start <= <time column> <
    end`` (timezone-aware bounds), in key order."""
    import psycopg
    from psycopg import sql

    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("postgres window bounds must be timezone-aware")
    columns = list(spec.schema)
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE {ts} >= %s AND {ts} < %s ORDER BY {key}"
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table=sql.Identifier(*sql_table.split(".")),
        ts=sql.Identifier(spec.time_column),
        key=sql.SQL(", ").join(sql.Identifier(c) for c in spec.key),
    )
    origin = f"{redact(uri)} table {sql_table}"
    try:
        with psycopg.connect(
            uri.replace("postgres://", "postgresql://", 1), connect_timeout=10
        ) as conn:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                cur.execute(query, (start, end))
                rows = cur.fetchall()
    except psycopg.errors.UndefinedTable as exc:
        raise SourceError(f"{origin}: table does not exist") from exc
    except psycopg.errors.UndefinedColumn as exc:
        raise SourceError(
            f"{origin}: missing required column ({exc.diag.message_primary})"
        ) from exc
    except psycopg.OperationalError as exc:
        raise SourceError(f"{origin}: cannot connect ({str(exc).strip().splitlines()[0]})") from exc
    data = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
    return pa.table(data)
