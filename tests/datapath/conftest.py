"""A real MariaDB server for the data-path tests of the backup and restore scripts.

The server (bench/mariadb.py) runs for the session on 127.0.0.1 with a data directory
under pytest's temp dir, and each test gets its own database, so that tests never see
each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bench.mariadb import MariaDB, ServerError, SQLError, running_server

__all__ = ["MariaDB", "SQLError"]

ROOT_PASSWORD = "datapath-root-pw"


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    try:
        with running_server(tmp_path_factory.mktemp("mariadb"), ROOT_PASSWORD) as instance:
            yield instance
    except ServerError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def database(mariadb: MariaDB) -> Iterator[str]:
    # '-' on purpose: names like the example's `otus-database` need quoting everywhere.
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    mariadb.sql(f"DROP DATABASE IF EXISTS `{name}`")
