// Version 9, in JavaScript: records each user's email domain.
//
// Rows are read through a cursor a page at a time, the domain is cut out with JavaScript's own
// string functions (an internationalised domain is kept as Unicode, lowercased), and each page
// is written back in one batch, with progress reported. SQLite then counts users per domain
// through this migration's `is_free_mail` function, called once per row.

import { migration, progress } from './hsm-guest.js';

const PAGE = 500;
const FREE_MAIL = new Set(['gmail.com', 'outlook.com', 'yahoo.com', 'proton.me']);

function domainOf(email) {
  const at = typeof email === 'string' ? email.lastIndexOf('@') : -1;
  return at < 0 ? null : email.slice(at + 1).trim().toLowerCase() || null;
}

function is_free_mail(domain) {
  return domain === null ? null : FREE_MAIL.has(domain) ? 1 : 0;
}

function up(db) {
  db.executeBatch(
    'ALTER TABLE users ADD COLUMN email_domain TEXT; ALTER TABLE users ADD COLUMN free_mail INTEGER;',
  );
  const [total] = db.queryOne('SELECT count(*) FROM users');
  let done = 0;
  let batch = [];
  const flush = () => {
    db.executeMany('UPDATE users SET email_domain = ?1 WHERE id = ?2', batch);
    done += batch.length;
    batch = [];
    progress(done, total);
  };
  for (const [id, email] of db.stream('SELECT id, email FROM users ORDER BY id', [], PAGE)) {
    batch.push([domainOf(email), id]);
    if (batch.length === PAGE) flush();
  }
  if (batch.length > 0) flush();
  db.registerFunction('is_free_mail', 1);
  db.execute('UPDATE users SET free_mail = is_free_mail(email_domain)');
}

function down(db) {
  db.executeBatch('ALTER TABLE users DROP COLUMN free_mail; ALTER TABLE users DROP COLUMN email_domain;');
}

export const { metadata, up: upStep, down: downStep, functions } = migration({
  version: 9,
  name: 'add_email_domains',
  description: 'Add users.email_domain and users.free_mail, written by a JavaScript migration',
  up,
  down,
  functions: [is_free_mail],
});
export { upStep as up, downStep as down };
