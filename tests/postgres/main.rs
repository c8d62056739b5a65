//! PostgreSQL tests: a real server (`pg_virtualenv` starts a throw-away cluster; scripts/test.sh
//! runs this target inside it), a database and roles per test, real guest components and SQL
//! files, and the real `hsm-host` binary.

mod adopt;
mod backups;
mod checks;
mod examples;
mod fleet;
mod hostile;
mod races;
mod real_sets;
mod rehearsal;
mod review;
mod runs;
mod signing;
mod support;
