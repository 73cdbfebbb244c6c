"""The two Presto Python clients behind one DB-API shape, shared by tests/tpch and tests/sql."""

import prestodb
import trino

MODULES = {"prestodb": prestodb, "trino": trino}


def connect(client, host, port, user, catalog="tpch", schema="tiny", scheme="http", timeout_s=60):
    """A DB-API connection of `client` ("prestodb" or "trino") with the session's catalog and schema."""
    return MODULES[client].dbapi.connect(
        host=host, port=port, user=user, catalog=catalog, schema=schema, http_scheme=scheme, request_timeout=timeout_s
    )


def run(connection, sql):
    """(column names, column types, rows) of `sql`; closes the connection."""
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall()
        description = cursor.description
    finally:
        connection.close()
    return [column[0] for column in description], [column[1] for column in description], [list(row) for row in rows]
