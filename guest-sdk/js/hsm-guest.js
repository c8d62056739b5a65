// Write hsm-host migrations in JavaScript (contract hsm:migration@0.2.1, built with
// componentize-js).
//
// A migration is one ES module: it writes `up` (and `down` when it can be undone) against a
// `Db`, and exports what `migration(...)` returns under the contract's names:
//
//   import { migration } from './hsm-guest.js';
//
//   export const { metadata, up, down, functions } = migration({
//     version: 9,
//     name: 'add_notes',
//     description: 'Create the notes table',
//     up: (db) => db.executeBatch('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)'),
//     down: (db) => db.executeBatch('DROP TABLE notes'),
//   });
//
// Build it with `componentize-js app.js -w wit -n migration-with-functions -d http fetch-event
// -o app.wasm` (the README's "JavaScript" section). Values are JavaScript's: null, numbers
// (integers within 2^53, or BigInt for any 64-bit integer), strings, Uint8Array. INTEGER
// columns read back as numbers when they fit exactly, as BigInt otherwise. Rows are arrays. A
// failed statement throws `SqlError` with SQLite's code and message; anything thrown out of
// `up`/`down` fails the migration with its message and the host rolls everything back. The
// host owns the transaction: never run BEGIN/COMMIT.

import * as sql from 'hsm:migration/sql@0.2.1';
import * as hostLog from 'hsm:migration/log@0.2.1';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** A statement failed: SQLite's extended result `code` (`code & 255` is the primary code,
 * e.g. 19 SQLITE_CONSTRAINT, 23 SQLITE_AUTH when the host's policy refused it) and message. */
/**
 * A statement failed: SQLite's extended result `code` and message. On PostgreSQL `sqlstate` is
 * the server's SQLSTATE ('23505') and `code` the SQLite code mapped from it; `sqlstate` is
 * undefined on SQLite and for the host's own refusals.
 */
export class SqlError extends Error {
  constructor(code, message, sqlText, sqlstate) {
    super(`${message} (SQLite code ${code}) in \`${sqlText}\``);
    this.name = 'SqlError';
    this.code = code;
    this.sqliteMessage = message;
    this.sql = sqlText;
    this.sqlstate = sqlstate;
  }
}

function call(sqlText, operation) {
  try {
    return operation();
  } catch (error) {
    const payload = error && error.payload;
    if (payload && typeof payload.code === 'number') {
      throw new SqlError(payload.code, payload.message, sqlText, sql.lastSqlstate());
    }
    throw error;
  }
}

function toValue(value) {
  if (value === null || value === undefined) return { tag: 'null' };
  if (typeof value === 'bigint') return { tag: 'integer', val: value };
  if (typeof value === 'boolean') return { tag: 'integer', val: value ? 1n : 0n };
  if (typeof value === 'number') {
    return Number.isSafeInteger(value)
      ? { tag: 'integer', val: BigInt(value) }
      : { tag: 'real', val: value };
  }
  if (typeof value === 'string') return { tag: 'text', val: value };
  if (value instanceof Uint8Array) return { tag: 'blob', val: value };
  throw new TypeError(`cannot pass ${typeof value} to SQLite: use null, a number, a BigInt, a string or a Uint8Array`);
}

function integer(value) {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value;
}

function fromValue(value) {
  switch (value.tag) {
    case 'null': return null;
    case 'integer': return integer(value.val);
    default: return value.val;
  }
}

const values = (params) => Array.from(params, toValue);

/** A page's rows as arrays: cells row after row, TEXT and BLOB as spans of one buffer. */
function rows(page) {
  const width = page.columns.length;
  if (width === 0) return [];
  const out = [];
  let row = [];
  for (const cell of page.cells) {
    switch (cell.tag) {
      case 'null': row.push(null); break;
      case 'integer': row.push(integer(cell.val)); break;
      case 'real': row.push(cell.val); break;
      case 'text':
        row.push(decoder.decode(page.bytes.subarray(cell.val.offset, cell.val.offset + cell.val.len)));
        break;
      case 'blob':
        row.push(page.bytes.slice(cell.val.offset, cell.val.offset + cell.val.len));
        break;
    }
    if (row.length === width) {
      out.push(row);
      row = [];
    }
  }
  return out;
}

/** Parameter sets as one page (all TEXT and BLOB in one buffer); null when widths differ or
 * are 0 (then they run one by one). */
function paramSets(sets) {
  const cells = [];
  const chunks = [];
  let length = 0;
  let width = null;
  const span = (bytes) => {
    const at = { offset: length, len: bytes.length };
    chunks.push(bytes);
    length += bytes.length;
    return at;
  };
  for (const set of sets) {
    if (width === null) width = set.length;
    else if (set.length !== width) return null;
    for (const value of set) {
      const v = toValue(value);
      if (v.tag === 'text') cells.push({ tag: 'text', val: span(encoder.encode(v.val)) });
      else if (v.tag === 'blob') cells.push({ tag: 'blob', val: span(v.val) });
      else cells.push(v);
    }
  }
  if (!width) return null;
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return { width, cells, bytes };
}

/** SQL compiled once by `db.prepare`; run it as often as needed. */
export class Statement {
  constructor(sqlText) {
    this.sql = sqlText;
    this.inner = call(sqlText, () => sql.Statement.prepare(sqlText));
  }

  /** Runs it with `params`; returns the rows changed. */
  execute(params = []) {
    return integer(call(this.sql, () => this.inner.execute(values(params))));
  }

  /** Runs the query with `params`; returns every row. */
  query(params = []) {
    return rows(call(this.sql, () => this.inner.query(values(params))));
  }
}

/** The database being migrated, inside the transaction the host opened for this migration. */
export class Db {
  /** Runs one statement that returns no rows; returns the number of rows it changed. */
  execute(sqlText, params = []) {
    return integer(call(sqlText, () => sql.execute(sqlText, values(params))));
  }

  /** Runs several `;`-separated statements without parameters (a DDL script). */
  executeBatch(sqlText) {
    call(sqlText, () => sql.executeBatch(sqlText));
  }

  /** Runs a query and returns all its rows as arrays (within the host's bound of 1,000,000
   * rows or 64 MiB: stream larger results). */
  query(sqlText, params = []) {
    return rows(call(sqlText, () => sql.query(sqlText, values(params))));
  }

  /** The first row of a query, or null. */
  queryOne(sqlText, params = []) {
    return this.query(sqlText, params)[0] ?? null;
  }

  /** A query's rows, fetched from the host `batch` at a time: for results of any size. */
  *stream(sqlText, params = [], batch = 1000) {
    const cursor = call(sqlText, () => sql.queryRows(sqlText, values(params)));
    try {
      for (;;) {
        const page = rows(call(sqlText, () => cursor.next(batch)));
        if (page.length === 0) return;
        yield* page;
      }
    } finally {
      // Frees the host's cursor now (it keeps at most 32 open per migration) where the
      // engine has explicit resource management; otherwise the host frees it when `up` ends.
      if (typeof Symbol.dispose === 'symbol' && typeof cursor[Symbol.dispose] === 'function') {
        cursor[Symbol.dispose]();
      }
    }
  }

  /** Runs one write statement once per set of parameters, in a single call to the host when
   * every set has the same width: the fast way to write many rows. Returns the rows changed. */
  executeMany(sqlText, sets) {
    sets = Array.from(sets);
    const page = paramSets(sets);
    if (page !== null) {
      return integer(call(sqlText, () => sql.executeMany(sqlText, page)));
    }
    const statement = this.prepare(sqlText);
    return sets.reduce((changed, set) => changed + statement.execute(set), 0);
  }

  /** Compiles `sqlText` once for running many times. */
  prepare(sqlText) {
    return new Statement(sqlText);
  }

  /** Makes the SQL function `name` (listed in `migration({ functions: [...] })`) usable in the
   * SQL this step runs. SQLite calls it once per row, in a separate sandbox with no SQL. */
  registerFunction(name, arity, deterministic = true) {
    call(`registerFunction(${name}, ${arity})`, () => sql.registerFunction(name, arity, deterministic));
  }

  /** The rowid of the most recent successful INSERT. */
  lastInsertRowid() {
    return integer(sql.lastInsertRowid());
  }

  /** The database engine the migration runs on: 'sqlite' or 'postgresql'. */
  dialect() {
    return sql.runningOn();
  }
}

/** Writes one message to the host's log (`trace`, `debug`, `info`, `warn` or `error`). */
export function log(message, level = 'info') {
  hostLog.log(level, message);
}

/** Reports progress of a long data migration (`total` 0 when unknown). */
export function progress(done, total = 0) {
  hostLog.progress(BigInt(done), BigInt(total));
}

function run(step) {
  try {
    step(new Db());
  } catch (error) {
    // The migration fails with this message; the host rolls everything back.
    throw error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }
}

/** Declares the module's migration; export the result's `metadata`, `up`, `down` and
 * `functions`. Leave out `down` to declare it irreversible. `functions` lists scalar SQL
 * functions (named functions taking and returning JavaScript values) that `up`/`down` can
 * register under their names. */
export function migration({ version, name, description, up, down, functions = [] }) {
  return {
    metadata: () => ({
      version: BigInt(version),
      name,
      description,
      reversible: typeof down === 'function',
    }),
    up: () => run(up),
    down: () => {
      if (typeof down !== 'function') {
        throw `migration ${version} (${name}) is irreversible: it declares no down step; restore the backup taken before it was applied instead`;
      }
      run(down);
    },
    functions: {
      names: () => functions.map((f) => f.name),
      call: (index, args) => {
        const f = functions[index];
        if (!f) throw `this migration declares no SQL function number ${index}`;
        try {
          return toValue(f(...args.map(fromValue)));
        } catch (error) {
          throw error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        }
      },
    },
  };
}
