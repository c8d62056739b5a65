//! The contract's values on PostgreSQL. Parameters are bound in the type the server inferred
//! for them: integers to int2/4/8 (range-checked), real numbers to float4/8, text to the text
//! types, json/jsonb, numeric, bool, uuid, date and timestamps, blobs to bytea. Results map
//! int2/4/8 and oid to integer, float to real, bool to 0/1, bytea to blob, and the text types,
//! json, numeric, uuid, dates and timestamps to text. Any other type is a clear error that
//! says which cast to write.

use std::error::Error as StdError;

use hsm_sandbox::contract::sql::{Cell, Page, Span};
use hsm_sandbox::contract::{SqlError, Value};
use postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use crate::numeric;

type BoxError = Box<dyn StdError + Sync + Send>;

/// A guest's parameter, bound as the type the server asks for.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub(crate) &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        if let Kind::Domain(base) = ty.kind() {
            return self.to_sql(base, out);
        }
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => integer(*i, ty, out),
            Value::Real(r) => real(*r, ty, out),
            Value::Text(text) => from_text(text, ty, out),
            Value::Blob(bytes) if *ty == Type::BYTEA => bytes.as_slice().to_sql(ty, out),
            Value::Blob(_) => Err(cannot_bind("a blob", ty)),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn cannot_bind(what: &str, ty: &Type) -> BoxError {
    format!(
        "cannot bind {what} to a parameter of type {ty}: cast the parameter in the SQL \
         (`$1::text::{ty}`) and pass text"
    )
    .into()
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || ty.name() == "citext"
}

fn integer(
    i: i64,
    ty: &Type,
    out: &mut postgres::types::private::BytesMut,
) -> Result<IsNull, BoxError> {
    let range = |_| -> BoxError { format!("{i} is out of range for type {ty}").into() };
    match *ty {
        Type::INT8 => i.to_sql(ty, out),
        Type::INT4 => i32::try_from(i).map_err(range)?.to_sql(ty, out),
        Type::INT2 => i16::try_from(i).map_err(range)?.to_sql(ty, out),
        Type::OID => u32::try_from(i).map_err(range)?.to_sql(ty, out),
        Type::FLOAT8 => (i as f64).to_sql(ty, out),
        Type::FLOAT4 => (i as f32).to_sql(ty, out),
        Type::BOOL => (i != 0).to_sql(ty, out),
        Type::NUMERIC => numeric::encode(&i.to_string(), out),
        _ if is_text(ty) => i.to_string().as_str().to_sql(&Type::TEXT, out),
        _ => Err(cannot_bind("an integer", ty)),
    }
}

fn real(
    r: f64,
    ty: &Type,
    out: &mut postgres::types::private::BytesMut,
) -> Result<IsNull, BoxError> {
    match *ty {
        Type::FLOAT8 => r.to_sql(ty, out),
        Type::FLOAT4 => (r as f32).to_sql(ty, out),
        Type::NUMERIC if r.is_finite() => numeric::encode(&format!("{r}"), out),
        _ if is_text(ty) => format!("{r}").as_str().to_sql(&Type::TEXT, out),
        _ => Err(cannot_bind("a real number", ty)),
    }
}

fn from_text(
    text: &str,
    ty: &Type,
    out: &mut postgres::types::private::BytesMut,
) -> Result<IsNull, BoxError> {
    let parse_error = |what: &str| -> BoxError {
        format!(
            "cannot read {:?} as {what} for a parameter of type {ty}",
            hsm_store::text::neutralize(text, 60)
        )
        .into()
    };
    match *ty {
        _ if is_text(ty) => text.to_sql(&Type::TEXT, out),
        Type::JSON | Type::XML => {
            out.extend_from_slice(text.as_bytes());
            Ok(IsNull::No)
        }
        Type::JSONB => {
            out.extend_from_slice(&[1]);
            out.extend_from_slice(text.as_bytes());
            Ok(IsNull::No)
        }
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => integer(
            text.trim().parse().map_err(|_| parse_error("an integer"))?,
            ty,
            out,
        ),
        Type::FLOAT4 | Type::FLOAT8 => real(
            text.trim().parse().map_err(|_| parse_error("a number"))?,
            ty,
            out,
        ),
        Type::NUMERIC => numeric::encode(text.trim(), out).map_err(|_| parse_error("a number")),
        Type::BOOL => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "yes" | "on" => true.to_sql(ty, out),
            "f" | "false" | "0" | "no" | "off" => false.to_sql(ty, out),
            _ => Err(parse_error("a boolean")),
        },
        Type::UUID => {
            let hex: String = text.chars().filter(|c| *c != '-').collect();
            let bytes = hex::decode(&hex).map_err(|_| parse_error("a uuid"))?;
            if bytes.len() != 16 {
                return Err(parse_error("a uuid"));
            }
            out.extend_from_slice(&bytes);
            Ok(IsNull::No)
        }
        Type::DATE => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| parse_error("a date (YYYY-MM-DD)"))?
            .to_sql(ty, out),
        Type::TIMESTAMP => naive_timestamp(text)
            .ok_or_else(|| parse_error("a timestamp (YYYY-MM-DD HH:MM:SS)"))?
            .to_sql(ty, out),
        Type::TIMESTAMPTZ => {
            let at = chrono::DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok()
                .or_else(|| naive_timestamp(text).map(|t| t.and_utc()))
                .ok_or_else(|| parse_error("a timestamp (RFC 3339, or UTC YYYY-MM-DD HH:MM:SS)"))?;
            at.to_sql(ty, out)
        }
        _ => Err(cannot_bind("text", ty)),
    }
}

fn naive_timestamp(text: &str) -> Option<chrono::NaiveDateTime> {
    let text = text.trim();
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ]
    .iter()
    .find_map(|format| {
        chrono::NaiveDateTime::parse_from_str(text, format)
            .ok()
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(text, format)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
    })
}

/// One result cell as read from the server.
pub(crate) enum Read {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl<'a> FromSql<'a> for Read {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if let Kind::Domain(base) = ty.kind() {
            return Self::from_sql(base, raw);
        }
        if let Kind::Enum(_) = ty.kind() {
            return Ok(Read::Text(String::from_utf8(raw.to_vec())?));
        }
        Ok(match *ty {
            Type::INT2 => Read::Integer(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Read::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Read::Integer(i64::from_sql(ty, raw)?),
            Type::OID => Read::Integer(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Read::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Read::Real(f64::from_sql(ty, raw)?),
            Type::BOOL => Read::Integer(bool::from_sql(ty, raw)?.into()),
            Type::BYTEA => Read::Blob(raw.to_vec()),
            Type::JSONB => Read::Text(String::from_utf8(
                raw.get(1..).unwrap_or_default().to_vec(),
            )?),
            Type::JSON | Type::XML | Type::CHAR => Read::Text(String::from_utf8(raw.to_vec())?),
            Type::NUMERIC => Read::Text(numeric::decode(raw)?),
            Type::UUID => {
                let h = hex::encode(raw);
                if h.len() != 32 {
                    return Err("a uuid of the wrong length".into());
                }
                Read::Text(format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ))
            }
            Type::DATE => Read::Text(chrono::NaiveDate::from_sql(ty, raw)?.to_string()),
            Type::TIMESTAMP => Read::Text(
                chrono::NaiveDateTime::from_sql(ty, raw)?
                    .format("%Y-%m-%d %H:%M:%S%.f")
                    .to_string(),
            ),
            Type::TIMESTAMPTZ => Read::Text(
                chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?
                    .format("%Y-%m-%dT%H:%M:%S%.fZ")
                    .to_string(),
            ),
            _ if is_text(ty) => Read::Text(String::from_utf8(raw.to_vec())?),
            _ => {
                return Err(format!(
                    "hsm-host reads numbers, text, bytea, bool, json, numeric, uuid, dates and \
                     timestamps; this column is of type {ty}: cast it in the query (`col::text`)"
                )
                .into());
            }
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Read::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl Read {
    /// The value as text (a blob as its bytes, read as UTF-8 where they are).
    pub(crate) fn into_text(self) -> Option<String> {
        match self {
            Read::Null => None,
            Read::Integer(i) => Some(i.to_string()),
            Read::Real(r) => Some(r.to_string()),
            Read::Text(t) => Some(t),
            Read::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        }
    }
}

/// A page being filled (cells row after row, text and blob bytes in one buffer).
#[derive(Default)]
pub(crate) struct PageBuilder {
    cells: Vec<Cell>,
    bytes: Vec<u8>,
    pub(crate) rows: usize,
}

impl PageBuilder {
    pub(crate) fn push(&mut self, read: Read) -> Result<(), SqlError> {
        let cell = match read {
            Read::Null => Cell::Null,
            Read::Integer(i) => Cell::Integer(i),
            Read::Real(r) => Cell::Real(r),
            Read::Text(t) => Cell::Text(self.span(t.as_bytes())?),
            Read::Blob(b) => Cell::Blob(self.span(&b)?),
        };
        self.cells.push(cell);
        Ok(())
    }

    pub(crate) fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    fn span(&mut self, bytes: &[u8]) -> Result<Span, SqlError> {
        let too_big = || SqlError {
            code: hsm_sandbox::sql::SQLITE_TOOBIG,
            message: "the page's text and blobs exceed 4 GiB: read fewer rows at a time".into(),
        };
        let offset = u32::try_from(self.bytes.len()).map_err(|_| too_big())?;
        let len = u32::try_from(bytes.len()).map_err(|_| too_big())?;
        offset.checked_add(len).ok_or_else(too_big)?;
        self.bytes.extend_from_slice(bytes);
        Ok(Span { offset, len })
    }

    pub(crate) fn finish(self, columns: Vec<String>) -> Page {
        Page {
            columns,
            cells: self.cells,
            bytes: self.bytes,
        }
    }
}
