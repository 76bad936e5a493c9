//! Timestamp parsing and formatting, UTC, without a date-time dependency.
//!
//! Accepted: RFC 3339 (`2011-12-09T12:50:00Z`, `+01:00` offsets, fractional
//! seconds, `T` or a space), `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD HH:MM`,
//! `YYYY-MM-DD` and `YYYYMMDD`. Times without an offset are read as UTC.
//! [`now_secs`] is the one clock of every crate.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

fn date(y: &[u8], m: &[u8], d: &[u8]) -> Option<i64> {
    let (y, m, d) = (digits(y)? as i64, digits(m)?, digits(d)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses a timestamp into seconds since the Unix epoch (UTC); `None` if it
/// matches none of the accepted forms or names an impossible date or time.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() == 8 {
        return date(&b[0..4], &b[4..6], &b[6..8]).map(|d| d * 86_400);
    }
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let day = date(&b[0..4], &b[5..7], &b[8..10])?;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(day * 86_400);
    }
    if rest[0] != b'T' && rest[0] != b't' && rest[0] != b' ' {
        return None;
    }
    let rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let hh = digits(&rest[0..2])?;
    let mm = digits(&rest[3..5])?;
    let mut rest = &rest[5..];
    let mut ss = 0;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        ss = digits(&rest[1..3])?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &rest[1 + n..];
        }
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let offset = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    Some(day * 86_400 + i64::from(hh * 3600 + mm * 60 + ss) - offset)
}

/// Formats seconds since the epoch as RFC 3339 UTC (`2011-12-09T12:50:00Z`).
pub fn format_timestamp(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Formats seconds since the epoch as a date (`2011-12-09`).
pub fn format_date(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The system clock: whole seconds since 1970-01-01 UTC, or 0 if the clock
/// is set before that.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats() {
        let t = 1_323_435_000; // 2011-12-09T12:50:00Z
        assert_eq!(parse_timestamp("2011-12-09T12:50:00Z"), Some(t));
        assert_eq!(parse_timestamp("2011-12-09 12:50:00"), Some(t));
        assert_eq!(parse_timestamp("2011-12-09 12:50"), Some(t));
        assert_eq!(parse_timestamp("2011-12-09T13:50:00.250+01:00"), Some(t));
        assert_eq!(parse_timestamp("2011-12-09"), Some(t - 46_200));
        assert_eq!(parse_timestamp("20111209"), Some(t - 46_200));
        assert_eq!(format_timestamp(t), "2011-12-09T12:50:00Z");
        assert_eq!(format_date(t), "2011-12-09");
        for bad in [
            "",
            "2011-13-01",
            "2011-02-30",
            "2011-12-09X",
            "2011-12-09 25:00:00",
            "abc",
            "2011-12-9",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(parse_timestamp("2012-02-29"), Some(1_330_473_600));
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("1969-12-31 23:59:59"), Some(-1));
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_date(-1), "1969-12-31");
        assert_eq!(parse_timestamp("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_timestamp("1900-02-29"), None);
        assert_eq!(parse_timestamp("2011-04-31"), None);
        assert_eq!(parse_timestamp("2011-00-10"), None);
        assert_eq!(parse_timestamp("2011-01-00"), None);
        assert_eq!(parse_timestamp("20110230"), None);
        assert_eq!(
            parse_timestamp("2011-12-09t07:50:00-05:00"),
            parse_timestamp("2011-12-09T12:50:00Z")
        );
        assert_eq!(
            parse_timestamp(" 2011-12-09 12:50:00 "),
            Some(1_323_435_000)
        );
        for bad in [
            "2011-12-09T12:50:00+0100",
            "2011-12-09T12:50:00.Z",
            "2011-12-09T12:5",
            "2011-12-09T",
            "2011-12-09 12:60",
            "2011-12-09T12:50:00+24:00",
            "12/09/2011",
            "2011-12-09T12:50:00ZZ",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn roundtrip(t in -2_000_000_000i64..4_000_000_000) {
            prop_assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }

        #[test]
        fn date_roundtrip(t in -2_000_000_000i64..4_000_000_000) {
            let midnight = t.div_euclid(86_400) * 86_400;
            prop_assert_eq!(parse_timestamp(&format_date(t)), Some(midnight));
            prop_assert_eq!(parse_timestamp(&format_date(t).replace('-', "")), Some(midnight));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}", digits in "[0-9 :TZ+.-]{0,30}") {
            let _ = parse_timestamp(&s);
            let _ = parse_timestamp(&digits);
        }
    }
}
