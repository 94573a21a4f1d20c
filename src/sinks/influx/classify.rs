//! Response classification: what an InfluxDB answer means for the batch.
//!
//! Pure functions on a status code, a `Retry-After` value and a body, so the
//! retry policy is tested without a socket and shared by the v1 (plain HTTP)
//! and v2 (`influxdb2` crate) writers. The rules:
//!
//! * 2xx: written.
//! * 413: too large; the sink splits the batch at a line boundary.
//! * 429, 5xx: retryable; 429 and 503 honour `Retry-After` (seconds or an
//!   HTTP date).
//! * 400: permanent. InfluxDB 1.x *stores the valid lines* of a batch it
//!   answers with `partial write`, so such a batch must never be resent whole.
//! * Any other 4xx (401, 403, 404, ...): permanent.

use std::time::Duration;

use super::WriteError;

/// Longest server message kept in a [`WriteError::Permanent`]; InfluxDB quotes
/// offending lines, which can be long.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Turns an HTTP answer into the outcome of a write.
///
/// `retry_after` is the raw `Retry-After` header, when present; `body` the
/// response body (InfluxDB's error message, usually `{"error":"..."}`).
///
/// # Errors
/// Every non-2xx status, classified as described in the module doc.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Result<(), WriteError> {
    match status {
        200..=299 => Ok(()),
        413 => Err(WriteError::TooLarge),
        429 | 503 => Err(WriteError::Retryable {
            reason: format!("server answered {status}: {}", short_message(body)),
            retry_after: retry_after.and_then(|v| parse_retry_after(v, jiff::Timestamp::now())),
        }),
        500..=599 => Err(WriteError::Retryable {
            reason: format!("server answered {status}: {}", short_message(body)),
            retry_after: None,
        }),
        _ => {
            let message = short_message(body);
            Err(WriteError::Permanent {
                status,
                partial: status == 400 && message.contains("partial write"),
                message,
            })
        }
    }
}

/// Parses a `Retry-After` value: delay seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`), relative to `now`. A date in the past
/// means "now" (zero); anything unparsable is ignored (`None`), so the
/// sink's own backoff applies.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let delta = at.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(u64::try_from(delta).unwrap_or(0)))
}

/// The server's message, without the `{"error":"..."}` wrapper InfluxDB puts
/// around it, truncated to [`MAX_MESSAGE_BYTES`] at a character boundary.
pub fn short_message(body: &str) -> String {
    let body = body.trim();
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => match v.get("error").or_else(|| v.get("message")) {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => body.to_owned(),
        },
        Err(_) => body.to_owned(),
    };
    truncate(text, MAX_MESSAGE_BYTES)
}

/// Lines InfluxDB says it dropped from a partial write (`... dropped=3`),
/// when the message says so.
pub fn dropped_lines(message: &str) -> Option<usize> {
    let start = message.rfind("dropped=")? + "dropped=".len();
    let digits = message[start..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    message[start..start + digits].parse().ok()
}

/// `text` cut to at most `max` bytes at a character boundary, marked with `…`.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permanent(status: u16, body: &str) -> (u16, String, bool) {
        match classify(status, None, body) {
            Err(WriteError::Permanent {
                status,
                message,
                partial,
            }) => (status, message, partial),
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[test]
    fn success_statuses() {
        assert_eq!(classify(204, None, ""), Ok(()));
        assert_eq!(classify(200, None, "{}"), Ok(()));
    }

    #[test]
    fn too_large() {
        assert_eq!(classify(413, None, "too big"), Err(WriteError::TooLarge));
    }

    #[test]
    fn retryable_statuses() {
        for status in [500, 502, 503, 504, 429] {
            match classify(status, None, "x") {
                Err(WriteError::Retryable { retry_after, .. }) => assert_eq!(retry_after, None),
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_seconds_on_429_and_503_only() {
        for status in [429, 503] {
            match classify(status, Some(" 7 "), "") {
                Err(WriteError::Retryable { retry_after, .. }) => {
                    assert_eq!(retry_after, Some(Duration::from_secs(7)));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        match classify(500, Some("7"), "") {
            Err(WriteError::Retryable { retry_after, .. }) => assert_eq!(retry_after, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_http_date() {
        let now: jiff::Timestamp = "2015-10-21T07:27:30Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn partial_write_is_permanent_and_marked() {
        let body = r#"{"error":"partial write: field type conflict: input field \"value\" on measurement \"reading\" is type integer, already exists as type float dropped=1"}"#;
        let (status, message, partial) = permanent(400, body);
        assert_eq!(status, 400);
        assert!(partial);
        assert!(message.starts_with("partial write: field type conflict"));
        assert_eq!(dropped_lines(&message), Some(1));
    }

    #[test]
    fn other_client_errors_are_permanent() {
        assert_eq!(
            permanent(400, r#"{"error":"unable to parse 'x y': bad"}"#),
            (400, "unable to parse 'x y': bad".to_owned(), false)
        );
        assert_eq!(
            permanent(401, r#"{"error":"authorization failed"}"#),
            (401, "authorization failed".to_owned(), false)
        );
        assert_eq!(
            permanent(404, r#"{"error":"database not found: \"nope\""}"#),
            (404, "database not found: \"nope\"".to_owned(), false)
        );
        // v2 servers answer {"code":..,"message":..}.
        assert_eq!(
            permanent(403, r#"{"code":"forbidden","message":"no"}"#),
            (403, "no".to_owned(), false)
        );
        assert_eq!(permanent(403, "plain"), (403, "plain".to_owned(), false));
    }

    #[test]
    fn dropped_lines_parsing() {
        assert_eq!(dropped_lines("partial write: x dropped=12"), Some(12));
        assert_eq!(dropped_lines("partial write: x"), None);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("ééé".to_owned(), 3), "é…");
        assert_eq!(truncate("abc".to_owned(), 3), "abc");
    }
}
