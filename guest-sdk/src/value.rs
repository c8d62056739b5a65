//! Conversions between Rust values and SQLite values, in both directions.

pub use crate::bindings::hsm::migration::types::Value;

/// A Rust value that can be bound to a `?` placeholder.
pub trait ToSql {
    /// The SQLite value to bind.
    fn to_sql(&self) -> Value;

    /// The SQLite value to bind, taking `self`: owned text and bytes move instead of being
    /// copied (parameter tuples bind this way).
    fn into_sql(self) -> Value
    where
        Self: Sized,
    {
        self.to_sql()
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> Value {
        self.clone()
    }

    fn into_sql(self) -> Value {
        self
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> Value {
        (**self).to_sql()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToSql::to_sql)
    }

    fn into_sql(self) -> Value {
        self.map_or(Value::Null, ToSql::into_sql)
    }
}

macro_rules! integer_to_sql {
    ($($ty:ty),*) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
integer_to_sql!(i8, i16, i32, i64, u8, u16, u32, bool);

impl ToSql for f64 {
    fn to_sql(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToSql for f32 {
    fn to_sql(&self) -> Value {
        Value::Real(f64::from(*self))
    }
}

impl ToSql for str {
    fn to_sql(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToSql for String {
    fn to_sql(&self) -> Value {
        Value::Text(self.clone())
    }

    fn into_sql(self) -> Value {
        Value::Text(self)
    }
}

impl ToSql for [u8] {
    fn to_sql(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToSql for Vec<u8> {
    fn to_sql(&self) -> Value {
        Value::Blob(self.clone())
    }

    fn into_sql(self) -> Value {
        Value::Blob(self)
    }
}

/// The parameters of one statement: `()` for none, a tuple such as `(id, "name")`, a slice or
/// array of `&dyn ToSql`, or a `Vec<Value>`.
pub trait Params {
    /// The values, in placeholder order.
    fn into_values(self) -> Vec<Value>;

    /// Appends the values to `out`, in placeholder order (batches build one list this way).
    fn extend_values(self, out: &mut Vec<Value>)
    where
        Self: Sized,
    {
        out.extend(self.into_values());
    }
}

impl Params for () {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}

impl Params for &[&dyn ToSql] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(|p| p.to_sql()).collect()
    }
}

impl<const N: usize> Params for &[&dyn ToSql; N] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(|p| p.to_sql()).collect()
    }
}

macro_rules! tuple_params {
    ($($name:ident),+) => {
        impl<$($name: ToSql),+> Params for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_values(self) -> Vec<Value> {
                let ($($name,)+) = self;
                vec![$($name.into_sql()),+]
            }

            #[allow(non_snake_case)]
            fn extend_values(self, out: &mut Vec<Value>) {
                let ($($name,)+) = self;
                $(out.push($name.into_sql());)+
            }
        }
    };
}
tuple_params!(A);
tuple_params!(A, B);
tuple_params!(A, B, C);
tuple_params!(A, B, C, D);
tuple_params!(A, B, C, D, E);
tuple_params!(A, B, C, D, E, F);
tuple_params!(A, B, C, D, E, F, G);
tuple_params!(A, B, C, D, E, F, G, H);

/// A Rust type a column can be read as. Reading NULL needs `Option<T>`.
pub trait FromSql: Sized {
    /// Converts the value, or says why it cannot be.
    fn from_sql(value: &Value) -> Result<Self, String>;
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Integer(_) => "INTEGER",
        Value::Real(_) => "REAL",
        Value::Text(_) => "TEXT",
        Value::Blob(_) => "BLOB",
    }
}

fn mismatch<T>(value: &Value, wanted: &str) -> Result<T, String> {
    Err(format!("holds {}, cannot be read as {wanted}", kind(value)))
}

impl FromSql for Value {
    fn from_sql(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_sql(other).map(Some),
        }
    }
}

impl FromSql for i64 {
    fn from_sql(value: &Value) -> Result<Self, String> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => mismatch(other, "i64"),
        }
    }
}

macro_rules! narrow_integer_from_sql {
    ($($ty:ty),*) => {$(
        impl FromSql for $ty {
            fn from_sql(value: &Value) -> Result<Self, String> {
                let wide = i64::from_sql(value)?;
                <$ty>::try_from(wide)
                    .map_err(|_| format!("value {wide} does not fit in {}", stringify!($ty)))
            }
        }
    )*};
}
narrow_integer_from_sql!(i32, u32, i16, u16, i8, u8, u64, usize);

impl FromSql for bool {
    fn from_sql(value: &Value) -> Result<Self, String> {
        Ok(i64::from_sql(value)? != 0)
    }
}

impl FromSql for f64 {
    fn from_sql(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(r) => Ok(*r),
            // SQLite stores whole REAL values as INTEGER in some cases; reading them is lossless.
            Value::Integer(i) => Ok(*i as f64),
            other => mismatch(other, "f64"),
        }
    }
}

impl FromSql for String {
    fn from_sql(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(t) => Ok(t.clone()),
            other => mismatch(other, "String"),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(t) => Ok(t.clone().into_bytes()),
            other => mismatch(other, "Vec<u8>"),
        }
    }
}
