//! Dates as `strftime` writes them, in UTC: `strftime_now(format)`, the global transformers
//! gives chat templates (Llama 3.1+ and others print today's date in their system prompt; Python
//! formats `datetime.now()`, we the current UTC time, since the process has no time-zone
//! database and the date is what matters), and the store's timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::{Error, ErrorKind};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A moment broken down into the fields strftime prints (UTC, proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday
    weekday: u32,
    /// 1..=366
    yday: u32,
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Seconds since the Unix epoch to a civil UTC date (Howard Hinnant's `civil_from_days`).
fn civil_from_unix(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    const CUMULATIVE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUMULATIVE[(month - 1) as usize] + day + u32::from(month > 2 && is_leap(year));
    Civil {
        year,
        month,
        day,
        hour: (sod / 3600) as u32,
        minute: (sod / 60 % 60) as u32,
        second: (sod % 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        yday,
    }
}

/// The template function: the current time formatted with `format`.
pub fn strftime_now(format: &str) -> Result<String, Error> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "system clock is before 1970"))?
        .as_secs();
    Ok(format_unix(
        i64::try_from(secs).unwrap_or(i64::MAX / 2),
        format,
    ))
}

/// `time.strftime(format, time.gmtime(secs))` for the common conversions: `%a %A %b %B %d %e
/// %H %I %j %m %M %p %S %y %Y %Z %z %F %T %%`, and glibc's `-` flag (`%-d`) that drops the padding.
/// An unknown conversion is copied as written, as glibc does.
pub fn format_unix(secs: i64, format: &str) -> String {
    let t = civil_from_unix(secs);
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let unpadded = chars.peek() == Some(&'-');
        if unpadded {
            chars.next();
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            if unpadded {
                out.push('-');
            }
            break;
        };
        let num = |v: i64, width: usize| {
            if unpadded {
                v.to_string()
            } else {
                format!("{v:0width$}")
            }
        };
        let hour12 = match t.hour % 12 {
            0 => 12,
            h => h,
        };
        let text = match spec {
            'a' => WEEKDAYS[t.weekday as usize][..3].to_string(),
            'A' => WEEKDAYS[t.weekday as usize].to_string(),
            'b' | 'h' => MONTHS[(t.month - 1) as usize][..3].to_string(),
            'B' => MONTHS[(t.month - 1) as usize].to_string(),
            'd' => num(t.day.into(), 2),
            'e' if unpadded => t.day.to_string(),
            'e' => format!("{:2}", t.day),
            'H' => num(t.hour.into(), 2),
            'I' => num(hour12.into(), 2),
            'j' => num(t.yday.into(), 3),
            'm' => num(t.month.into(), 2),
            'M' => num(t.minute.into(), 2),
            'p' => if t.hour < 12 { "AM" } else { "PM" }.to_string(),
            'S' => num(t.second.into(), 2),
            'y' => num(t.year.rem_euclid(100), 2),
            'Y' => t.year.to_string(),
            'Z' => "UTC".to_string(),
            'z' => "+0000".to_string(),
            'F' => format!("{}-{:02}-{:02}", t.year, t.month, t.day),
            'T' => format!("{:02}:{:02}:{:02}", t.hour, t.minute, t.second),
            '%' => "%".to_string(),
            other => format!("%{}{other}", if unpadded { "-" } else { "" }),
        };
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let c = civil_from_unix(0);
        assert_eq!(
            (c.year, c.month, c.day, c.weekday, c.yday),
            (1970, 1, 1, 4, 1)
        );
        // 2024-02-29 12:34:56 UTC, a Thursday, day 60 of a leap year.
        let c = civil_from_unix(1_709_210_096);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second, c.weekday, c.yday),
            (2024, 2, 29, 12, 34, 56, 4, 60)
        );
        // Before the epoch: 1969-12-31 23:59:59, a Wednesday.
        let c = civil_from_unix(-1);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.weekday, c.yday),
            (1969, 12, 31, 23, 3, 365)
        );
    }

    #[test]
    fn formats_like_python() {
        // python3 -c 'import time; print(time.strftime(FMT, time.gmtime(TS)))'
        let ts = 1_709_210_096; // 2024-02-29 12:34:56 UTC
        assert_eq!(format_unix(ts, "%d %b %Y"), "29 Feb 2024");
        assert_eq!(
            format_unix(ts, "%A, %B %d, %y"),
            "Thursday, February 29, 24"
        );
        assert_eq!(format_unix(ts, "%a %H:%M:%S %p %j"), "Thu 12:34:56 PM 060");
        let ts = 1_736_132_405; // 2025-01-06 03:00:05 UTC, a Monday
        assert_eq!(format_unix(ts, "%-d %B %Y"), "6 January 2025");
        assert_eq!(format_unix(ts, "%d/%m/%Y %I%p"), "06/01/2025 03AM");
        assert_eq!(format_unix(ts, "%F %T %% %q"), "2025-01-06 03:00:05 % %q");
    }
}
