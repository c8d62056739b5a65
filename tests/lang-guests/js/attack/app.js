// Version 8, in JavaScript: the adversarial suite's core cases. Which attack it makes is read
// from the one row of the `attack` table; each reports what it got, and a leak if the host let
// it through.

import { migration } from './hsm-guest.js';

function attack(db) {
  const [name] = db.queryOne('SELECT name FROM attack');
  switch (name) {
    case 'error':
      db.execute("INSERT INTO attack VALUES ('written before the error')");
      throw new RangeError('refusing on purpose after writing');
    case 'sql_error':
      db.execute('INSERT INTO no_such_table VALUES (1)');
      break;
    case 'dialect':
      // Contract 0.2.1: the dialect, and an error's SQLSTATE (none on SQLite).
      try {
        db.execute('INSERT INTO no_such_table VALUES (1)');
      } catch (error) {
        throw new Error(`dialect ${db.dialect()}, sqlstate ${error.sqlstate}`);
      }
      throw new Error('the insert did not fail');
    case 'network':
      // Built without HTTP: fetch traps when called, and nothing else reaches a network.
      fetch('http://127.0.0.1:9/');
      throw new Error('LEAK: fetch started');
    case 'attach':
      db.execute("ATTACH DATABASE '/tmp/hsm-js-attach.db' AS other");
      throw new Error('LEAK: attached');
    case 'tracking':
      db.execute("UPDATE migrations SET checksum = 'forged'");
      throw new Error('LEAK: wrote the tracking table');
    case 'loop':
      for (;;) {}
    case 'memory': {
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(16 << 20).fill(1));
    }
    case 'streams': {
      // More streams than the host keeps cursors open (32): each must be freed when read.
      let read = 0;
      for (let i = 0; i < 40; i++) {
        for (const [n] of db.stream('SELECT ?1', [i])) read += n === i ? 1 : 0;
      }
      throw new Error(`${read} streams read`);
    }
    case 'none':
      db.executeBatch('CREATE TABLE survivor (x)');
      return;
    case 'script': {
      // The shared list of attack classes (tests/integration/attack_classes.rs) runs its SQL
      // through every entry point: here, from the `attack_script` table.
      const [script] = db.queryOne('SELECT sql FROM attack_script');
      db.executeBatch(script);
      return;
    }
    default:
      throw new Error(`unknown attack ${name}`);
  }
}

export const { metadata, up: upStep, down: downStep, functions } = migration({
  version: 8,
  name: 'js_attack',
  description: "Test guest: the adversarial suite's core cases, in JavaScript",
  up: attack,
  down: (db) => db.executeBatch('DROP TABLE survivor'),
});
export { upStep as up, downStep as down };
