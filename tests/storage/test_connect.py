"""What goes wrong reaching a database, in the operator's words: the driver's own errors
classified (wrong credentials, no such database, no server), and real connections where they
are cheap (a SQLite file that cannot be opened; PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from storage import Database, DatabaseUnreachable, reach
from storage.connect import check_driver, explain

URL = make_url("postgresql+psycopg://bot:secret@db.example:6543/gpt2bot")
SERVER = 'connection failed: connection to server at "10.0.0.5", port 6543 failed: '


def failed(message: str) -> OperationalError:
    """The error SQLAlchemy raises when psycopg's connection fails with `message`."""
    return OperationalError("SELECT 1", {}, psycopg.OperationalError(message))


def test_wrong_credentials_say_to_check_the_user_and_password() -> None:
    error = failed(SERVER + 'FATAL:  password authentication failed for user "bot"')
    assert explain(error, URL) == (
        "cannot connect to the database server at db.example:6543 (password authentication "
        'failed for user "bot")',
        "Check the user name and password in the URL.",
    )
    unknown_user = failed(SERVER + 'FATAL:  role "bot" does not exist')
    assert explain(unknown_user, URL)[1] == "Check the user name and password in the URL."


def test_a_missing_database_says_to_create_it() -> None:
    problem, fix = explain(failed(SERVER + 'FATAL:  database "gpt2bot" does not exist'), URL)
    assert problem.endswith('(database "gpt2bot" does not exist)')
    assert fix == "Create the database 'gpt2bot' or fix its name in the URL."


def test_no_server_gives_host_port_and_the_drivers_one_line_reason() -> None:
    refused = failed(
        SERVER + "Connection refused\n\tIs the server running on that host and accepting "
        "TCP/IP connections?"
    )
    default_port = make_url("postgresql+psycopg://bot@db.example/gpt2bot")
    assert explain(refused, default_port) == (
        "cannot connect to the database server at db.example:5432 (Connection refused)",
        "Start the database server, or fix the host and port in the URL.",
    )


def test_a_sqlite_file_that_cannot_be_opened(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path}")  # a folder, not a file
    try:
        with pytest.raises(DatabaseUnreachable) as caught:
            reach(db)
    finally:
        db.dispose()
    problem, fix = caught.value.args
    assert problem == f"cannot open the SQLite database {tmp_path} (unable to open database file)"
    assert fix == "Point the URL at a file in a folder this user can write."


def test_the_driver_is_checked_with_the_setting() -> None:
    check_driver("sqlite:///./data/gpt2bot.db")
    check_driver("postgresql+psycopg://u@h/db")
    with pytest.raises(ValueError, match="'nonsense' is not a database SQLAlchemy knows"):
        check_driver("nonsense://")
    with pytest.raises(ValueError) as caught:
        check_driver("mysql+pymysql://u@h/db")
    assert caught.value.args == (
        "mysql+pymysql:// needs the Python driver pymysql, which is not installed",
        "Install PyMySQL (pip install PyMySQL); gpt2bot is tested on SQLite and PostgreSQL.",
    )


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL not set")
def test_a_user_the_postgresql_server_does_not_know() -> None:
    url = make_url(os.environ["TEST_DATABASE_URL"]).set(username="nobody-gpt2bot")
    db = Database(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(DatabaseUnreachable) as caught:
            reach(db)
    finally:
        db.dispose()
    problem, fix = caught.value.args
    assert f"{url.host}:{url.port}" in problem and '"nobody-gpt2bot"' in problem
    assert fix == "Check the user name and password in the URL."
