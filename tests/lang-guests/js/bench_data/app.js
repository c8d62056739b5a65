// The data benchmark in JavaScript, twin of tests/guests/guest_bench_data: normalise every
// `items.email` (trim, lowercase), reading pages with a prepared statement and writing each
// page back with `executeMany`.

import { migration } from './hsm-guest.js';

const PAGE = 10000;

function up(db) {
  const page = db.prepare('SELECT id, email FROM items WHERE id > ?1 ORDER BY id LIMIT ?2');
  let last = -(2n ** 63n);
  for (;;) {
    const rows = page.query([last, PAGE]);
    if (rows.length === 0) break;
    last = rows[rows.length - 1][0];
    db.executeMany(
      'UPDATE items SET email = ?2 WHERE id = ?1',
      rows.map(([id, email]) => [id, email.trim().toLowerCase()]),
    );
  }
}

export const { metadata, up: upStep, down: downStep, functions } = migration({
  version: 1,
  name: 'bench_data_js',
  description: 'Benchmark: normalise one million emails in JavaScript',
  up,
});
export { upStep as up, downStep as down };
