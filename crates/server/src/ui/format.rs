//! How values read on a page: sizes a person can take in, with the exact
//! bytes on hover; times in UTC with how far away they are.

use artifactstore_core::Timestamp;
use maud::{html, Markup};

/// `bytes` as `1.5 MiB`, the exact count on hover.
pub(crate) fn size(bytes: u64) -> Markup {
    html! { span title=(format!("{bytes} bytes")) { (human_size(bytes)) } }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `at` as `2026-12-05 21:45 UTC (in 3 months)`, machine-readable too.
pub(crate) fn time(at: &Timestamp, now: &Timestamp) -> Markup {
    let moment = at.as_datetime();
    let shown = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        moment.year(),
        u8::from(moment.month()),
        moment.day(),
        moment.hour(),
        moment.minute()
    );
    let seconds = (at.as_datetime() - now.as_datetime()).whole_seconds();
    html! {
        time datetime=(at.to_string()) title=(at.to_string()) {
            (shown) " " span.hint { "(" (relative(seconds)) ")" }
        }
    }
}

/// `seconds` from now (negative: past) in words.
fn relative(seconds: i64) -> String {
    let span = seconds.unsigned_abs();
    if span < 60 {
        return "now".into();
    }
    let (count, unit) = [
        (365 * 86_400, "year"),
        (30 * 86_400, "month"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ]
    .into_iter()
    .find(|(length, _)| span >= *length)
    .map(|(length, unit)| (span / length, unit))
    .unwrap_or((span / 60, "minute"));
    let plural = if count == 1 { "" } else { "s" };
    if seconds > 0 {
        format!("in {count} {unit}{plural}")
    } else {
        format!("{count} {unit}{plural} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536 * 1024), "1.5 MiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
        assert!(size(1536).into_string().contains("title=\"1536 bytes\""));
    }

    #[test]
    fn times_say_how_far_away_they_are() {
        assert_eq!(relative(0), "now");
        assert_eq!(relative(59), "now");
        assert_eq!(relative(60), "in 1 minute");
        assert_eq!(relative(-7_200), "2 hours ago");
        assert_eq!(relative(90 * 86_400), "in 3 months");
        assert_eq!(relative(-800 * 86_400), "2 years ago");
        let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        let later = now.plus_seconds(3 * 86_400).unwrap();
        let shown = time(&later, &now).into_string();
        assert!(shown.contains("2023-11-17 22:13 UTC"), "{shown}");
        assert!(shown.contains("(in 3 days)"), "{shown}");
    }
}
