//! The components table: the exact bytes of each applied component, deflated, so `down` runs
//! what was applied after its file changed or is gone; one per applied version.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Tracking, column_names};
use crate::error::{Error, Result, SqliteContext};

impl Tracking {
    /// Drops the stored components no applied migration records any more (superseded by a
    /// re-apply or a `repair`, or of a migration rolled back): one stored component per
    /// applied version. Returns how many rows went.
    pub fn drop_unused_components(&self, conn: &Connection) -> Result<usize> {
        if column_names(conn, &self.components)?.is_empty() {
            return Ok(0);
        }
        let by_record = column_names(conn, &self.components)?
            .iter()
            .any(|c| c == "recorded_as");
        let in_use = format!(
            "SELECT checksum FROM main.\"{}\" WHERE status = 'applied' AND checksum IS NOT NULL",
            self.migrations
        );
        let sql = match by_record {
            true => format!(
                "DELETE FROM main.\"{}\" WHERE checksum NOT IN ({in_use})
                   AND (recorded_as IS NULL OR recorded_as NOT IN ({in_use}))",
                self.components
            ),
            false => format!(
                "DELETE FROM main.\"{}\" WHERE checksum NOT IN ({in_use})",
                self.components
            ),
        };
        conn.execute(&sql, [])
            .context("cannot drop stored components no migration uses")
    }

    /// The bytes the stored components take (as stored, deflated).
    pub fn stored_components_size(&self, conn: &Connection) -> Result<u64> {
        if column_names(conn, &self.components)?.is_empty() {
            return Ok(0);
        }
        let size: i64 = conn
            .query_row(
                &format!(
                    "SELECT coalesce(sum(length(bytes)), 0) FROM main.\"{}\"",
                    self.components
                ),
                [],
                |r| r.get(0),
            )
            .context("cannot measure the stored components")?;
        Ok(size as u64)
    }

    /// Keeps the exact bytes of an applied component, so `down` can run it even after its file
    /// changed or disappeared. `bytes` are its [`stored_form`], kept under their sha256
    /// `checksum`; `recorded_as` is what `migrations.checksum` holds for it when that is not
    /// the component's sha256 (a SQL migration's file digests), to find it by.
    pub fn store_component(
        &self,
        conn: &Connection,
        checksum: &str,
        recorded_as: Option<&str>,
        bytes: &[u8],
        now: &str,
    ) -> Result<()> {
        conn.execute(
            &format!(
                "INSERT INTO main.\"{}\" (checksum, bytes, stored_at, recorded_as)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (checksum) DO UPDATE SET recorded_as = excluded.recorded_as
                 WHERE recorded_as IS NULL",
                self.components
            ),
            params![checksum, bytes, now, recorded_as],
        )
        .context("cannot store the applied component")?;
        Ok(())
    }

    /// Records who signed the stored component `checksum` (`name SHA256:…; …`) and its
    /// detached signature, when that is what verified: `down` checks it again once the file
    /// and its `FILE.sig` are gone.
    pub fn record_signers(
        &self,
        conn: &Connection,
        checksum: &str,
        signers: &str,
        signature: Option<&[u8]>,
    ) -> Result<()> {
        conn.execute(
            &format!(
                "UPDATE main.\"{}\" SET signers = ?2, signature = ?3 WHERE checksum = ?1",
                self.components
            ),
            params![checksum, signers, signature],
        )
        .context("cannot record who signed the applied component")?;
        Ok(())
    }

    /// The detached signature kept with the stored component `checksum`, if any (none in a
    /// table of an earlier release).
    pub fn stored_signature(&self, conn: &Connection, checksum: &str) -> Result<Option<Vec<u8>>> {
        if !column_names(conn, &self.components)?
            .iter()
            .any(|c| c == "signature")
        {
            return Ok(None);
        }
        conn.query_row(
            &format!(
                "SELECT signature FROM main.\"{}\" WHERE checksum = ?1",
                self.components
            ),
            [checksum],
            |row| row.get::<_, Option<Vec<u8>>>(0),
        )
        .optional()
        .map(Option::flatten)
        .context("cannot read a stored component's signature")
    }

    /// The stored bytes of the component `migrations.checksum` records as `recorded` (its
    /// sha256, or a SQL migration's file digests), inflated if hsm-host deflated them.
    ///
    /// # Errors
    /// [`Error::Sqlite`] if the table cannot be read; [`Error::InvalidComponent`] if the row is
    /// deflated but does not inflate within [`MAX_COMPONENT_BYTES`], or its bytes are not
    /// those of its sha256.
    pub fn stored_component(&self, conn: &Connection, recorded: &str) -> Result<Option<Vec<u8>>> {
        // A table of an earlier release has no recorded_as column until hsm-host writes to it.
        let by_record = column_names(conn, &self.components)?
            .iter()
            .any(|c| c == "recorded_as");
        let sql = format!(
            "SELECT checksum, bytes FROM main.\"{}\" WHERE checksum = ?1{}
             ORDER BY checksum = ?1 DESC",
            self.components,
            if by_record {
                " OR recorded_as = ?1"
            } else {
                ""
            }
        );
        let mut stmt = conn
            .prepare(&sql)
            .context("cannot read a stored component")?;
        let rows = stmt
            .query_map([recorded], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .context("cannot read a stored component")?;
        let mut damaged = None;
        for row in rows {
            let (checksum, stored) = row.context("cannot read a stored component")?;
            let checked = inflate(stored).and_then(|bytes| {
                // The checksum is the row's key: bytes that do not match it are not the
                // component that applied the migration. One found by the files it was packed
                // from names them last (its custom section).
                if crate::digest::sha256_hex(&bytes) != checksum {
                    Err("the stored bytes do not match their sha256".to_owned())
                } else if checksum != recorded && !bytes.ends_with(recorded.as_bytes()) {
                    Err(format!(
                        "the stored component was not packed from the files recorded ({})",
                        crate::text::neutralize(recorded, 140)
                    ))
                } else {
                    Ok(bytes)
                }
            });
            match checked {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(reason) => {
                    damaged.get_or_insert(Error::InvalidComponent {
                        path: format!(
                            "<component stored in {}, sha256 {}>",
                            self.components,
                            crate::text::neutralize(&checksum, 80)
                        )
                        .into(),
                        reason,
                    });
                }
            }
        }
        damaged.map_or(Ok(None), Err)
    }
}

/// What a row of the components table starts with when hsm-host deflated the component.
/// Rows without it (written by earlier releases) hold the component as it is; a component
/// itself starts with `\0asm`, never with this.
const DEFLATED: &[u8] = b"hsm-deflate-1\0";

/// The most a stored component may inflate to: a row made to inflate without end (a deflate
/// bomb in a database someone handed over) stops here.
pub const MAX_COMPONENT_BYTES: usize = 1 << 30;

/// A component as its row holds it: deflated (a Rust component to about a third, so each step
/// writes a third of the pages). Made once per component and kept in the compile cache.
pub fn stored_form(component: &[u8]) -> Vec<u8> {
    let mut stored = DEFLATED.to_vec();
    stored.extend(miniz_oxide::deflate::compress_to_vec(component, 6));
    stored
}

/// The component a row holds.
fn inflate(stored: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    inflate_within(stored, MAX_COMPONENT_BYTES)
}

pub(super) fn inflate_within(
    stored: Vec<u8>,
    limit: usize,
) -> std::result::Result<Vec<u8>, String> {
    let Some(deflated) = stored.strip_prefix(DEFLATED) else {
        return Ok(stored);
    };
    miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, limit).map_err(|e| {
        match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => format!(
                "the stored component inflates to more than {} MiB; the row is not one \
                 hsm-host wrote",
                limit >> 20
            ),
            status => format!("the stored component is damaged (inflating it: {status:?})"),
        }
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    #[test]
    fn stored_components_come_back_as_they_were_and_damaged_rows_say_so() {
        let conn = Connection::open_in_memory().unwrap();
        let tracking = Tracking::default();
        tracking.ensure_tables(&conn).unwrap();
        let component: Vec<u8> = b"\0asm\x0d\0\x01\0"
            .iter()
            .copied()
            .chain((0..50_000u32).flat_map(|i| (i % 251).to_le_bytes()))
            .collect();
        let checksum = crate::digest::sha256_hex(&component);
        let form = stored_form(&component);
        assert!(form.len() * 3 < component.len(), "{} bytes", form.len());
        tracking
            .store_component(&conn, &checksum, None, &form, "now")
            .unwrap();
        assert_eq!(
            tracking.stored_component(&conn, &checksum).unwrap(),
            Some(component.clone())
        );
        // A row an earlier release wrote: the component as it is.
        let raw = b"\0asm raw".to_vec();
        let raw_checksum = crate::digest::sha256_hex(&raw);
        tracking
            .store_component(&conn, &raw_checksum, None, &raw, "now")
            .unwrap();
        assert_eq!(
            tracking.stored_component(&conn, &raw_checksum).unwrap(),
            Some(raw)
        );
        // Damaged, and swapped for another component: refused, naming the row.
        let mut damaged = form.clone();
        damaged.truncate(form.len() / 2);
        for (key, bytes) in [
            ("damaged", damaged),
            ("swapped", stored_form(b"\0asm other")),
        ] {
            tracking
                .store_component(&conn, key, None, &bytes, "now")
                .unwrap();
            let error = tracking
                .stored_component(&conn, key)
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("sha256 {key}")), "{error}");
            assert!(
                error.contains("damaged") || error.contains("do not match"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_row_that_inflates_without_end_stops_at_the_limit() {
        let bomb = stored_form(&vec![0u8; 4 << 20]);
        assert!(bomb.len() < 64 << 10);
        let error = inflate_within(bomb, 1 << 20).unwrap_err();
        assert!(error.contains("more than 1 MiB"), "{error}");
    }
}
