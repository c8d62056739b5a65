//! The words the tracking tables' status and direction columns hold, typed, with what else an
//! older tool wrote kept as it is.

use serde::Serialize;

use crate::plan::Direction;

/// `migrations.status`: what the row says of its migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowStatus {
    /// `applied`
    Applied,
    /// `rolled_back`
    RolledBack,
    /// Anything else an older tool wrote; neither applied nor rolled back for hsm-host.
    Other(String),
}

/// `migration_history.direction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryDirection {
    /// `up`
    Up,
    /// `down`
    Down,
    /// Anything else an older tool wrote.
    Other(String),
}

/// `migration_history.status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryStatus {
    /// `running`: started, not finished (or its process died).
    Running,
    /// `success`: committed.
    Success,
    /// `failed`: rolled back, or interrupted.
    Failed,
    /// `adopted`: recorded without running (another tool applied it, or a baseline).
    Adopted,
    /// Anything else an older tool wrote.
    Other(String),
}

/// The text of a column that holds one of a few words, and what else an older tool wrote.
macro_rules! column_words {
    ($type:ident { $($variant:ident => $word:literal),* $(,)? }) => {
        impl $type {
            /// The word as a column holds it (another tool's kept as it is).
            pub fn from_column(text: String) -> Self {
                match text.as_str() {
                    $($word => $type::$variant,)*
                    _ => $type::Other(text),
                }
            }

            /// The text stored in the column.
            pub fn as_str(&self) -> &str {
                match self {
                    $($type::$variant => $word,)*
                    $type::Other(text) => text,
                }
            }
        }

        impl Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

column_words!(RowStatus { Applied => "applied", RolledBack => "rolled_back" });
column_words!(HistoryDirection { Up => "up", Down => "down" });
column_words!(HistoryStatus {
    Running => "running",
    Success => "success",
    Failed => "failed",
    Adopted => "adopted",
});

impl From<Direction> for HistoryDirection {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::Up => HistoryDirection::Up,
            Direction::Down => HistoryDirection::Down,
        }
    }
}
