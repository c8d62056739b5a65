"""Write hsm-host migrations in Python (contract hsm:migration@0.2.1, built with componentize-py).

A migration is one Python module: it writes `up` (and `down` when it can be undone) against a
`Db`, and declares itself with `migration(...)`, whose two classes componentize-py exports:

    from hsm_guest import Db, migration

    def up(db: Db) -> None:
        db.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    def down(db: Db) -> None:
        db.execute_batch("DROP TABLE notes")

    WitWorld, Functions = migration(version=8, name="add_notes",
                                    description="Create the notes table", up=up, down=down)

Build it with `componentize-py -d wit -w migration-with-functions componentize app -o app.wasm`
(the README's "Python" section). Values are Python's: None, int, float, str, bytes. Rows are
tuples. A failed statement raises `SqlError` with SQLite's code and message; any exception
leaving `up`/`down` fails the migration with its message and the host rolls everything back.
The host owns the transaction: never run BEGIN/COMMIT.
"""

from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

from componentize_py_types import Err

import wit_world
from wit_world import exports
from wit_world.imports import log as _log
from wit_world.imports import sql as _sql
from wit_world.imports import types as _types

Row = Tuple[Any, ...]

__all__ = ["Db", "Row", "SqlError", "Statement", "migration", "log", "progress"]


class SqlError(Exception):
    """A statement failed: SQLite's extended result `code` (`code & 255` is the primary code,
    e.g. 19 SQLITE_CONSTRAINT, 23 SQLITE_AUTH when the host's policy refused it) and message.
    On PostgreSQL, `sqlstate` is the server's SQLSTATE (`"23505"`) and `code` the SQLite code
    mapped from it; `sqlstate` is None on SQLite and for the host's own refusals."""

    def __init__(self, code: int, message: str, sql: str, sqlstate: Optional[str] = None):
        super().__init__(f"{message} (SQLite code {code}) in `{sql}`")
        self.code = code
        self.message = message
        self.sql = sql
        self.sqlstate = sqlstate


def _value(value: Any) -> "_types.Value":
    if value is None:
        return _types.Value_Null()
    if isinstance(value, bool):
        return _types.Value_Integer(int(value))
    if isinstance(value, int):
        return _types.Value_Integer(value)
    if isinstance(value, float):
        return _types.Value_Real(value)
    if isinstance(value, str):
        return _types.Value_Text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _types.Value_Blob(bytes(value))
    raise TypeError(f"cannot pass {type(value).__name__} to SQLite: use None, int, float, str or bytes")


def _python(value: "_types.Value") -> Any:
    if isinstance(value, _types.Value_Null):
        return None
    return value.value


def _values(params: Sequence[Any]) -> List["_types.Value"]:
    return [_value(p) for p in params]


def _rows(page: "_sql.Page") -> List[Row]:
    """A page's rows as tuples: cells row after row, TEXT and BLOB as spans of one buffer."""
    width = len(page.columns)
    if width == 0:
        return []
    data = page.bytes
    out: List[Any] = []
    for cell in page.cells:
        if isinstance(cell, _sql.Cell_Integer) or isinstance(cell, _sql.Cell_Real):
            out.append(cell.value)
        elif isinstance(cell, _sql.Cell_Text):
            span = cell.value
            out.append(data[span.offset:span.offset + span.len].decode("utf-8"))
        elif isinstance(cell, _sql.Cell_Blob):
            span = cell.value
            out.append(bytes(data[span.offset:span.offset + span.len]))
        else:
            out.append(None)
    return [tuple(out[i:i + width]) for i in range(0, len(out), width)]


def _param_sets(rows: Iterable[Sequence[Any]]) -> Optional["_sql.ParamSets"]:
    """Parameter sets as one page (every TEXT and BLOB in one buffer); None when their widths
    differ or are 0 (then they run one by one)."""
    cells: List[Any] = []
    buffer = bytearray()
    width = None
    for row in rows:
        if width is None:
            width = len(row)
        elif len(row) != width:
            return None
        for value in row:
            if value is None:
                cells.append(_sql.Cell_Null())
            elif isinstance(value, bool):
                cells.append(_sql.Cell_Integer(int(value)))
            elif isinstance(value, int):
                cells.append(_sql.Cell_Integer(value))
            elif isinstance(value, float):
                cells.append(_sql.Cell_Real(value))
            elif isinstance(value, str):
                data = value.encode("utf-8")
                cells.append(_sql.Cell_Text(_sql.Span(len(buffer), len(data))))
                buffer += data
            elif isinstance(value, (bytes, bytearray, memoryview)):
                data = bytes(value)
                cells.append(_sql.Cell_Blob(_sql.Span(len(buffer), len(data))))
                buffer += data
            else:
                _value(value)  # raises the TypeError that names the type
    if not width:
        return None
    return _sql.ParamSets(width, cells, bytes(buffer))


def _call(sql: str, operation: Callable[[], Any]) -> Any:
    try:
        return operation()
    except Err as error:
        raise SqlError(error.value.code, error.value.message, sql, _sql.last_sqlstate()) from None


class Statement:
    """SQL compiled once by `Db.prepare`; run it as often as needed."""

    def __init__(self, sql: str):
        self.sql = sql
        self._inner = _call(sql, lambda: _sql.Statement.prepare(sql))

    def execute(self, params: Sequence[Any] = ()) -> int:
        """Runs it with `params`; returns the rows changed."""
        return _call(self.sql, lambda: self._inner.execute(_values(params)))

    def query(self, params: Sequence[Any] = ()) -> List[Row]:
        """Runs the query with `params`; returns every row."""
        return _rows(_call(self.sql, lambda: self._inner.query(_values(params))))


class Db:
    """The database being migrated, inside the transaction the host opened for this migration."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Runs one statement that returns no rows; returns the number of rows it changed."""
        return _call(sql, lambda: _sql.execute(sql, _values(params)))

    def execute_batch(self, sql: str) -> None:
        """Runs several `;`-separated statements without parameters (a DDL script)."""
        _call(sql, lambda: _sql.execute_batch(sql))

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[Row]:
        """Runs a query and returns all its rows as tuples (within the host's bound of 1,000,000
        rows or 64 MiB: stream larger results)."""
        return _rows(_call(sql, lambda: _sql.query(sql, _values(params))))

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Optional[Row]:
        """The first row of a query, or None."""
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def stream(self, sql: str, params: Sequence[Any] = (), batch: int = 1000) -> Iterator[Row]:
        """A query's rows, fetched from the host `batch` at a time: for results of any size."""
        cursor = _call(sql, lambda: _sql.query_rows(sql, _values(params)))
        try:
            while True:
                rows = _rows(_call(sql, lambda: cursor.next(batch)))
                if not rows:
                    return
                yield from rows
        finally:
            cursor.__exit__(None, None, None)

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Runs one write statement once per row of parameters, in a single call to the host
        when every row has the same width: the fast way to write many rows. Returns the total
        rows changed."""
        rows = list(rows)
        sets = _param_sets(rows)
        if sets is not None:
            return _call(sql, lambda: _sql.execute_many(sql, sets))
        statement = self.prepare(sql)
        return sum(statement.execute(row) for row in rows)

    def prepare(self, sql: str) -> Statement:
        """Compiles `sql` once for running many times."""
        return Statement(sql)

    def register_function(self, name: str, arity: int, deterministic: bool = True) -> None:
        """Makes the SQL function `name` (listed in `migration(functions=[...])`) usable in the
        SQL this step runs. SQLite calls it once per row, in a separate sandbox with no SQL."""
        _call(f"register_function({name}, {arity})",
              lambda: _sql.register_function(name, arity, deterministic))

    def last_insert_rowid(self) -> int:
        """The rowid of the most recent successful INSERT."""
        return _sql.last_insert_rowid()

    def dialect(self) -> str:
        """The database engine the migration runs on: `"sqlite"` or `"postgresql"`."""
        return "postgresql" if _sql.running_on() == _sql.Dialect.POSTGRESQL else "sqlite"


def log(message: str, level: str = "info") -> None:
    """Writes one message to the host's log (`trace`, `debug`, `info`, `warn` or `error`)."""
    levels = {"trace": _log.Level.TRACE, "debug": _log.Level.DEBUG, "info": _log.Level.INFO,
              "warn": _log.Level.WARN, "error": _log.Level.ERROR}
    _log.log(levels[level], message)


def progress(done: int, total: int = 0) -> None:
    """Reports progress of a long data migration (`total` 0 when unknown)."""
    _log.progress(done, total)


def _run(step: Callable[[Db], None]) -> None:
    try:
        step(Db())
    except Err:
        raise
    except Exception as error:  # the migration fails with its message; the host rolls back
        raise Err(f"{type(error).__name__}: {error}" if not isinstance(error, SqlError) else str(error))


def migration(version: int, name: str, description: str, up: Callable[[Db], None],
              down: Optional[Callable[[Db], None]] = None,
              functions: Sequence[Callable[..., Any]] = ()) -> Tuple[type, type]:
    """Declares the module's migration; assign the result to `WitWorld, Functions`.

    Leave out `down` to declare it irreversible: the host then refuses to roll it back and
    points the operator at a backup. `functions` lists scalar SQL functions (taking and returning
    Python values) that `up`/`down` can register under their Python names.
    """
    functions = list(functions)

    class Migration(wit_world.WitWorld):
        def metadata(self) -> "_types.Metadata":
            return _types.Metadata(version, name, description, down is not None)

        def up(self) -> None:
            _run(up)

        def down(self) -> None:
            if down is None:
                raise Err(f"migration {version} ({name}) is irreversible: it declares no down "
                          "step; restore the backup taken before it was applied instead")
            _run(down)

    class SqlFunctions(exports.Functions):
        def names(self) -> List[str]:
            return [f.__name__ for f in functions]

        def call(self, index: int, args: List["_types.Value"]) -> "_types.Value":
            if index >= len(functions):
                raise Err(f"this migration declares no SQL function number {index}")
            try:
                return _value(functions[index](*[_python(a) for a in args]))
            except Exception as error:
                raise Err(f"{type(error).__name__}: {error}")

    return Migration, SqlFunctions
