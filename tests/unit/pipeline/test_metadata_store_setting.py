"""The metadata_store setting: a SQLite file by default, a database server by URL, the password from the
environment only. The server itself is exercised in tests/e2e/test_metadata_on_postgres.py."""
from __future__ import annotations

import pytest

from pipeline import metadata
from pipeline.config import load_config


@pytest.fixture(autouse=True)
def no_password(monkeypatch):
    monkeypatch.delenv(metadata.PASSWORD_VARIABLE, raising=False)
    monkeypatch.delenv(metadata.PASSWORD_FILE_VARIABLE, raising=False)


def test_default_is_the_sqlite_file_under_output_root(tmp_path):
    config = load_config(None, [f"output_root={tmp_path}"])
    assert config.metadata_path == f"{tmp_path}/metadata.db"
    connection = metadata.connection_config(config.metadata_path)
    assert connection.WhichOneof("config") == "sqlite"
    assert connection.sqlite.filename_uri == f"{tmp_path}/metadata.db"
    assert not metadata.store_exists(config.metadata_path)


def test_postgresql_url_gives_host_port_database_user_and_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv(metadata.PASSWORD_VARIABLE, "s3cret")
    connection = metadata.connection_config("postgresql://mlmd@db.internal:6543/taxi_metadata")
    server = connection.postgresql
    assert (server.host, server.port, server.dbname, server.user, server.password) == (
        "db.internal", "6543", "taxi_metadata", "mlmd", "s3cret")
    assert metadata.store_exists("postgresql://mlmd@db.internal:6543/taxi_metadata")


def test_mysql_url_with_the_default_port_and_the_password_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    monkeypatch.setenv(metadata.PASSWORD_FILE_VARIABLE, str(secret))
    monkeypatch.setenv(metadata.PASSWORD_VARIABLE, "ignored: the file wins")
    server = metadata.connection_config("mysql://mlmd@127.0.0.1/taxi").mysql
    assert (server.host, server.port, server.database, server.user, server.password) == (
        "127.0.0.1", 3306, "taxi", "mlmd", "from-file")


def test_a_password_in_the_url_is_refused_and_not_repeated(tmp_path):
    with pytest.raises(ValueError) as raised:
        load_config(None, [f"output_root={tmp_path}", "metadata_store=postgresql://mlmd:hunter2@db:5432/taxi"])
    message = str(raised.value)
    assert "hunter2" not in message and "mlmd:***@db:5432" in message
    assert metadata.PASSWORD_VARIABLE in message and metadata.PASSWORD_FILE_VARIABLE in message


@pytest.mark.parametrize("url", ["postgresql://db:5432/taxi", "postgresql://mlmd@db:5432/", "mysql://mlmd@/taxi"])
def test_an_incomplete_url_says_how_to_write_it(url):
    with pytest.raises(ValueError, match=r"write it as (postgresql|mysql)://USER@HOST\[:PORT\]/DATABASE"):
        metadata.connection_config(url)


def test_an_unreadable_password_file_names_the_variable_and_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    monkeypatch.setenv(metadata.PASSWORD_FILE_VARIABLE, str(missing))
    with pytest.raises(ValueError, match=rf"{metadata.PASSWORD_FILE_VARIABLE}={missing}: cannot read"):
        metadata.connection_config("postgresql://mlmd@db/taxi")
