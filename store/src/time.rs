//! Timestamps as the Node tool wrote them (`Date.toISOString()`), so both tools' rows sort together.

/// Now, as `2024-01-01T12:00:00.000Z`.
pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
