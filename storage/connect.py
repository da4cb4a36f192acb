"""What goes wrong when a process reaches its database, said for the operator.

Two moments, each with one check: reading the settings (`check_driver`, part of
`DATABASE_URL`'s check: a scheme SQLAlchemy does not know, a driver that is not installed) and
the first connection (`reach`: a server that is not there, refused credentials, a database
that does not exist, a SQLite file that cannot be opened). Both raise `ValueError(problem,
fix)`, the shape of a settings error, so the operator reads one line that names DATABASE_URL
instead of a driver's traceback.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import NoSuchModuleError, OperationalError

SUPPORTED = "sqlite:///./data/gpt2bot.db or postgresql+psycopg://user:password@host/db"
# the package that provides each driver module SQLAlchemy imports
DRIVER_PACKAGES = {
    "psycopg": "the postgres extra: pip install 'gpt2bot[postgres]'",
    "psycopg2": "psycopg2-binary, or use postgresql+psycopg:// (the postgres extra)",
    "MySQLdb": "mysqlclient (pip install mysqlclient)",
    "pymysql": "PyMySQL (pip install PyMySQL)",
}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}
# what the driver's reason says -> what the operator should do
CREDENTIALS = ("password authentication failed", "no password supplied", "role ", "access denied")
NO_DATABASE = ("does not exist", "unknown database")


class DatabaseUnreachable(ValueError):
    """The database cannot be reached: `args` are (problem, fix), as in a settings error."""


class Pingable(Protocol):
    """A `storage.Database` (which checks its URL with this module, so is not imported here)."""

    url: str

    def ping(self) -> None: ...


def check_driver(url: str) -> None:
    """Refuse a URL whose dialect SQLAlchemy does not know or whose driver is missing."""
    parsed = make_url(url)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ValueError(
            f"{parsed.drivername!r} is not a database SQLAlchemy knows", f"Use e.g. {SUPPORTED}."
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as error:
        module = error.name or str(error)
        package = DRIVER_PACKAGES.get(module, f"the package that provides {module}")
        raise ValueError(
            f"{parsed.drivername}:// needs the Python driver {module}, which is not installed",
            f"Install {package}; gpt2bot is tested on SQLite and PostgreSQL.",
        ) from None


def reach(db: Pingable) -> None:
    """Connect once (blocking: call it off the event loop); `DatabaseUnreachable` says why
    not, in the operator's words."""
    try:
        db.ping()
    except OperationalError as error:
        raise DatabaseUnreachable(*explain(error, make_url(db.url))) from None


def explain(error: OperationalError, url: URL) -> tuple[str, str]:
    """(problem, fix) for a failed first connection, from the driver's own reason."""
    reason = driver_reason(error)
    if url.get_backend_name() == "sqlite":
        return (
            f"cannot open the SQLite database {url.database} ({reason})",
            "Point the URL at a file in a folder this user can write.",
        )
    port = url.port or DEFAULT_PORTS.get(url.get_backend_name())
    where = f"{url.host}:{port}" if url.host else "the local socket"
    problem = f"cannot connect to the database server at {where} ({reason})"
    lowered = reason.lower()
    if any(word in lowered for word in CREDENTIALS):
        return problem, "Check the user name and password in the URL."
    if any(word in lowered for word in NO_DATABASE):
        return problem, f"Create the database {url.database!r} or fix its name in the URL."
    return problem, "Start the database server, or fix the host and port in the URL."


def driver_reason(error: OperationalError) -> str:
    """The driver's reason in one line: psycopg's 'connection failed: connection to server
    at "h", port 5432 failed: FATAL:  password authentication failed for user "u"' becomes
    'password authentication failed for user "u"'."""
    text = str(error.orig if error.orig is not None else error).strip()
    first = text.splitlines()[0] if text else type(error.orig).__name__
    reason = first.rsplit(" failed: ", 1)[-1].strip()
    for prefix in ("FATAL:", "connection failed:"):
        reason = reason.removeprefix(prefix).strip()
    return reason.rstrip(".")
