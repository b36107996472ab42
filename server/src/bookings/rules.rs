//! Pure booking rules: time windows, attendees, overlap. No I/O, so they are unit-tested here.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest booking accepted.
pub const MAX_BOOKING_MICROS: i64 = 24 * 3600 * 1_000_000;
pub const MAX_TITLE_LEN: usize = 200;
pub const MAX_ATTENDEE_LEN: usize = 200;
pub const MAX_ATTENDEES: usize = 1000;
/// Bytes (UTF-8) all of a booking's attendee names take at most. With the title's 200
/// characters (800 bytes at most) this bounds a booking event's payload in bytes, whatever
/// `--max-body-bytes` allows: at most [`MAX_EVENT_BYTES`], so a socket's queue of
/// `--socket-queue-size` events holds at most that many times it.
pub const MAX_ATTENDEES_BYTES: usize = 16 * 1024;
/// What one booking event's payload takes at most, encoded: every attendee byte and title
/// byte escaped to two (a `"` or `\\`), their quotes and commas, and 4 KiB for the fixed
/// fields (ids, times, status, actor, trace, node).
pub const MAX_EVENT_BYTES: usize =
    2 * (MAX_ATTENDEES_BYTES + 4 * MAX_TITLE_LEN) + 3 * MAX_ATTENDEES + 4 * 1024;

/// A half-open time window `[start, end)` in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_us: i64,
    pub end_us: i64,
}

impl Window {
    /// Checks that the window ends after it starts and is not longer than a day.
    pub fn new(start_us: i64, end_us: i64) -> Result<Self, String> {
        if end_us <= start_us {
            return Err("endTime must be after startTime".into());
        }
        if end_us - start_us > MAX_BOOKING_MICROS {
            return Err("a booking may last at most 24 hours".into());
        }
        Ok(Self { start_us, end_us })
    }

    /// Two bookings overlap when each starts before the other ends (back to back is fine).
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start_us < other.end_us && other.start_us < self.end_us
    }
}

/// Parses an RFC 3339 instant into microseconds since the epoch; `field` names it in errors.
pub fn parse_instant(field: &str, text: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("{field} `{text}` is not an RFC 3339 time: {e}"))?;
    let micros = t.unix_timestamp_nanos() / 1_000;
    // Keep to years 1970..=9999 so every stored instant formats back.
    if !(0..=253_402_300_799_000_000).contains(&micros) {
        return Err(format!("{field} `{text}` is out of range"));
    }
    Ok(micros as i64)
}

/// Formats microseconds since the epoch as RFC 3339 in UTC.
pub fn format_instant(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Refuses control characters in user text: PostgreSQL rejects NUL outright (a 500 before
/// this check), and the others have no place in a title, a name or a location.
pub fn check_no_control(field: &str, text: &str) -> Result<(), String> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "{field} must not contain control characters (found U+{:04X})",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

pub fn check_title(title: &str) -> Result<String, String> {
    check_no_control("title", title)?;
    let title = title.trim();
    if title.is_empty() {
        return Err("title must not be empty".into());
    }
    if title.chars().count() > MAX_TITLE_LEN {
        return Err(format!("title may have at most {MAX_TITLE_LEN} characters"));
    }
    Ok(title.to_string())
}

/// Attendees must be named, and fit in the room.
pub fn check_attendees(attendees: &[String], capacity: i64) -> Result<(), String> {
    if attendees.len() > MAX_ATTENDEES {
        return Err(format!("at most {MAX_ATTENDEES} attendees"));
    }
    for attendee in attendees {
        check_no_control("attendee", attendee)?;
    }
    if let Some(bad) = attendees
        .iter()
        .find(|a| a.trim().is_empty() || a.chars().count() > MAX_ATTENDEE_LEN)
    {
        return Err(format!(
            "attendee `{bad}` must be 1 to {MAX_ATTENDEE_LEN} characters"
        ));
    }
    let bytes: usize = attendees.iter().map(String::len).sum();
    if bytes > MAX_ATTENDEES_BYTES {
        return Err(format!(
            "attendee names take {bytes} bytes (UTF-8); at most {MAX_ATTENDEES_BYTES} in all"
        ));
    }
    if attendees.len() as i64 > capacity {
        return Err(format!(
            "{} attendees do not fit in a boardroom for {capacity}",
            attendees.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600 * 1_000_000;

    #[test]
    fn windows_must_end_after_they_start_and_last_at_most_a_day() {
        assert!(Window::new(0, HOUR).is_ok());
        assert!(Window::new(HOUR, HOUR).unwrap_err().contains("after"));
        assert!(Window::new(HOUR, 0).is_err());
        assert!(Window::new(0, 24 * HOUR).is_ok());
        assert!(
            Window::new(0, 24 * HOUR + 1)
                .unwrap_err()
                .contains("24 hours")
        );
    }

    #[test]
    fn overlap_is_half_open() {
        let a = Window::new(0, 2 * HOUR).unwrap();
        assert!(a.overlaps(&Window::new(HOUR, 3 * HOUR).unwrap()));
        assert!(
            a.overlaps(&Window::new(HOUR / 2, HOUR).unwrap()),
            "contained"
        );
        assert!(
            Window::new(HOUR / 2, HOUR).unwrap().overlaps(&a),
            "symmetric"
        );
        assert!(
            !a.overlaps(&Window::new(2 * HOUR, 3 * HOUR).unwrap()),
            "back to back"
        );
        assert!(!Window::new(2 * HOUR, 3 * HOUR).unwrap().overlaps(&a));
    }

    #[test]
    fn instants_parse_with_offsets_and_format_in_utc() {
        let us = parse_instant("startTime", "2030-01-01T10:00:00+02:00").unwrap();
        assert_eq!(format_instant(us), "2030-01-01T08:00:00Z");
        let us = parse_instant("startTime", "2030-01-01T08:00:00.123456Z").unwrap();
        assert_eq!(us % 1_000_000, 123_456);
        let err = parse_instant("startTime", "tomorrow").unwrap_err();
        assert!(
            err.contains("startTime") && err.contains("RFC 3339"),
            "{err}"
        );
        assert!(parse_instant("endTime", "1960-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn titles_and_attendees_are_checked() {
        assert_eq!(check_title("  Standup ").unwrap(), "Standup");
        assert!(check_title("   ").is_err());
        assert!(check_title(&"x".repeat(MAX_TITLE_LEN + 1)).is_err());
        let people = vec!["a".to_string(), "b".to_string()];
        assert!(check_attendees(&people, 2).is_ok());
        assert!(
            check_attendees(&people, 1)
                .unwrap_err()
                .contains("do not fit")
        );
        assert!(check_attendees(&[" ".to_string()], 5).is_err());
        assert!(check_title("a\u{0}b").unwrap_err().contains("U+0000"));
        assert!(check_title("a\tb").is_err());
        assert!(check_title("Café ☕").is_ok());
        assert!(
            check_attendees(&["a\u{0}".to_string()], 5)
                .unwrap_err()
                .contains("attendee")
        );
    }

    #[test]
    fn attendee_names_are_bounded_in_bytes_not_only_in_characters() {
        // 100 names of 50 four-byte characters: each within 200 characters, 20,000 bytes in all.
        let wide: Vec<String> = (0..100).map(|_| "😀".repeat(50)).collect();
        let err = check_attendees(&wide, 1000).unwrap_err();
        assert!(
            err.contains("20000 bytes") && err.contains("16384"),
            "{err}"
        );
        let fits: Vec<String> = (0..80).map(|_| "😀".repeat(50)).collect();
        assert!(check_attendees(&fits, 1000).is_ok(), "16,000 bytes fit");
        // The bound the docs state: a full booking's event payload, worst case.
        let quotes: Vec<String> = (0..MAX_ATTENDEES)
            .map(|_| "\"".repeat(MAX_ATTENDEES_BYTES / MAX_ATTENDEES))
            .collect();
        assert!(check_attendees(&quotes, 10_000).is_ok());
        let encoded = serde_json::to_string(&serde_json::json!({
            "booking": { "title": "\"".repeat(MAX_TITLE_LEN), "attendees": quotes },
        }))
        .unwrap();
        assert!(encoded.len() + 1024 <= MAX_EVENT_BYTES, "{}", encoded.len());
    }
}
