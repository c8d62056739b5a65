//! Pages: cells row after row whose TEXT and BLOB bytes share one buffer, so a page crosses
//! the boundary as three allocations instead of one per text cell. Results are built here as
//! SQLite steps, and the cells a guest sends as parameters are checked here before they are
//! bound.

use rusqlite::types::ValueRef;

use super::{SQLITE_TOOBIG, checked_text};
use crate::contract::SqlError;
use crate::contract::sql::{Cell, Page, Span};

/// A page being filled.
#[derive(Default)]
pub(crate) struct PageBuilder {
    cells: Vec<Cell>,
    bytes: Vec<u8>,
}

impl PageBuilder {
    pub(crate) fn finish(self, columns: Vec<String>) -> Page {
        Page {
            columns,
            cells: self.cells,
            bytes: self.bytes,
        }
    }

    /// Appends `bytes` to the page's buffer and says where they are.
    fn span(&mut self, bytes: &[u8]) -> Result<Span, SqlError> {
        let too_big = || SqlError {
            code: SQLITE_TOOBIG,
            message: "the page's text and blobs exceed 4 GiB: read fewer rows at a time".into(),
        };
        let offset = u32::try_from(self.bytes.len()).map_err(|_| too_big())?;
        let len = u32::try_from(bytes.len()).map_err(|_| too_big())?;
        offset.checked_add(len).ok_or_else(too_big)?;
        self.bytes.extend_from_slice(bytes);
        Ok(Span { offset, len })
    }
}

impl PageBuilder {
    /// Takes one cell of `column`. TEXT that is not valid UTF-8 is refused, naming the column.
    pub(crate) fn push(&mut self, value: ValueRef<'_>, column: &str) -> Result<(), SqlError> {
        let cell = match value {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Integer(i),
            ValueRef::Real(r) => Cell::Real(r),
            ValueRef::Text(bytes) => {
                Cell::Text(self.span(checked_text(bytes, column)?.as_bytes())?)
            }
            ValueRef::Blob(bytes) => Cell::Blob(self.span(bytes)?),
        };
        self.cells.push(cell);
        Ok(())
    }
}

/// A cell the guest sent as SQLite's value, its bytes borrowed from `bytes`; why not when its
/// span lies outside `bytes` or its TEXT is not UTF-8.
pub(crate) fn cell_ref<'a>(cell: &Cell, bytes: &'a [u8]) -> Result<ValueRef<'a>, String> {
    Ok(match *cell {
        Cell::Null => ValueRef::Null,
        Cell::Integer(i) => ValueRef::Integer(i),
        Cell::Real(r) => ValueRef::Real(r),
        Cell::Text(span) => {
            let text = span_bytes(span, bytes)?;
            std::str::from_utf8(text).map_err(|_| "its TEXT is not valid UTF-8".to_owned())?;
            ValueRef::Text(text)
        }
        Cell::Blob(span) => ValueRef::Blob(span_bytes(span, bytes)?),
    })
}

fn span_bytes(span: Span, bytes: &[u8]) -> Result<&[u8], String> {
    let start = span.offset as usize;
    start
        .checked_add(span.len as usize)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| {
            format!(
                "its span {}..+{} is outside the {} bytes sent",
                span.offset,
                span.len,
                bytes.len()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_every_text_and_blob_in_one_buffer() {
        let mut page = PageBuilder::default();
        page.push(ValueRef::Integer(7), "id").unwrap();
        page.push(ValueRef::Text(b"caf\xc3\xa9"), "name").unwrap();
        page.push(ValueRef::Null, "note").unwrap();
        page.push(ValueRef::Blob(&[0, 1, 2]), "raw").unwrap();
        page.push(ValueRef::Real(1.5), "score").unwrap();
        let page = page.finish(vec!["id".into()]);
        assert_eq!(page.bytes, b"caf\xc3\xa9\x00\x01\x02");
        let described: Vec<String> = page.cells.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(
            described,
            [
                "Cell::Integer(7)",
                "Cell::Text(Span { offset: 0, len: 5 })",
                "Cell::Null",
                "Cell::Blob(Span { offset: 5, len: 3 })",
                "Cell::Real(1.5)",
            ]
        );
    }

    #[test]
    fn cells_from_the_guest_bind_only_inside_their_bytes() {
        let span = |offset, len| Span { offset, len };
        let bytes = "héllo".as_bytes();
        assert_eq!(
            cell_ref(&Cell::Text(span(1, 2)), bytes).unwrap(),
            ValueRef::Text("é".as_bytes())
        );
        assert_eq!(
            cell_ref(&Cell::Blob(span(6, 0)), bytes).unwrap(),
            ValueRef::Blob(&[])
        );
        for (cell, reason) in [
            (
                Cell::Blob(span(4, 3)),
                "its span 4..+3 is outside the 6 bytes sent",
            ),
            (
                Cell::Text(span(u32::MAX, u32::MAX)),
                "is outside the 6 bytes sent",
            ),
            (Cell::Text(span(1, 1)), "its TEXT is not valid UTF-8"),
        ] {
            let error = cell_ref(&cell, bytes).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
    }

    #[test]
    fn invalid_text_is_refused_naming_its_column() {
        let mut page = PageBuilder::default();
        let error = page.push(ValueRef::Text(b"\xff"), "email").unwrap_err();
        assert!(
            error.message.contains("column `email`"),
            "{}",
            error.message
        );
        assert!(page.bytes.is_empty() && page.cells.is_empty());
    }
}
