//! Plain-text output: the stdout writer, aligned tables, and how values print
//! (timestamps in RFC 3339, ranges, escaped identifiers).

use std::io::{self, BufWriter, Stdout, Write};

use fsmeta::{ByteRange, LockType, ShareReservation, Timestamp};

use crate::CliError;

/// Buffered stdout. A closed pipe (`fsmeta locks | head`) ends the command
/// quietly instead of panicking like `println!` would.
pub struct Out(BufWriter<Stdout>);

impl Out {
    pub fn new() -> Self {
        Out(BufWriter::new(io::stdout()))
    }

    /// Writes one line.
    pub fn line(&mut self, text: impl std::fmt::Display) -> Result<(), CliError> {
        writeln!(self.0, "{text}").map_err(CliError::from_stdout)
    }

    /// The raw writer (for serde_json).
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.0
    }

    pub fn flush(&mut self) -> Result<(), CliError> {
        self.0.flush().map_err(CliError::from_stdout)
    }
}

/// Rows buffered before a table's column widths are fixed: a table of any
/// length is printed with bounded memory, and a later cell wider than its
/// column only shifts that row.
const WIDTH_SAMPLE: usize = 1024;

/// A text table with a header row, columns padded to their widest cell.
pub struct Table {
    headers: Vec<&'static str>,
    widths: Option<Vec<usize>>,
    pending: Vec<Vec<String>>,
    rows: u64,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            widths: None,
            pending: Vec::new(),
            rows: 0,
        }
    }

    pub fn row(&mut self, out: &mut Out, cells: Vec<String>) -> Result<(), CliError> {
        self.rows += 1;
        match &self.widths {
            Some(widths) => out.line(render(widths, &cells)),
            None => {
                self.pending.push(cells);
                if self.pending.len() >= WIDTH_SAMPLE {
                    self.flush_pending(out)?;
                }
                Ok(())
            }
        }
    }

    /// Prints what is buffered; returns how many rows the table had.
    pub fn finish(mut self, out: &mut Out) -> Result<u64, CliError> {
        if self.rows > 0 {
            self.flush_pending(out)?;
        }
        Ok(self.rows)
    }

    fn flush_pending(&mut self, out: &mut Out) -> Result<(), CliError> {
        if self.widths.is_none() {
            let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
            for row in &self.pending {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
            out.line(render(&widths, &headers))?;
            self.widths = Some(widths);
        }
        let widths = self.widths.as_deref().unwrap_or_default();
        for row in std::mem::take(&mut self.pending) {
            out.line(render(widths, &row))?;
        }
        Ok(())
    }
}

fn render(widths: &[usize], cells: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        if i + 1 < cells.len() {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    // An empty last cell (e.g. no STALE mark) leaves no trailing blanks.
    line.truncate(line.trim_end_matches(' ').len());
    line
}

/// An identifier as a table shows it: control characters escaped (so an ID
/// with a newline or an escape sequence cannot break the table or the
/// terminal), everything else as is.
pub fn cell(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Microseconds since the Unix epoch as RFC 3339 in UTC, always with six
/// fractional digits, so the text is exact: `2026-11-27T09:30:00.000000Z`.
pub fn rfc3339(ts: Timestamp) -> String {
    let micros = ts.as_micros();
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `offset..last` (inclusive), or `offset..EOF` when the range reaches the
/// end of any file ([`ByteRange::reaches_eof`]: length 0 or all-ones, or a last byte
/// that saturates at u64::MAX).
pub fn range(offset: u64, length: u64) -> String {
    let range = ByteRange::new(offset, length);
    if range.reaches_eof() {
        format!("{offset}..EOF")
    } else {
        format!("{offset}..{}", range.last())
    }
}

pub fn lock_type(t: LockType) -> &'static str {
    match t {
        LockType::Shared => "shared",
        LockType::Exclusive => "exclusive",
    }
}

pub fn deny_mode(d: ShareReservation) -> &'static str {
    match d {
        ShareReservation::None => "none",
        ShareReservation::DenyRead => "deny_read",
        ShareReservation::DenyWrite => "deny_write",
        ShareReservation::DenyAll => "deny_all",
    }
}

pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_covers_the_valid_range_exactly() {
        assert_eq!(
            rfc3339(Timestamp::from_micros(0)),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(rfc3339(Timestamp::MIN_VALID), "0001-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(Timestamp::MAX_VALID), "9999-12-31T23:59:59.999999Z");
        assert_eq!(
            rfc3339(Timestamp::from_micros(951_782_400_000_001)),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_micros(-1)),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_micros(1_795_851_000_123_456)),
            "2026-11-28T07:30:00.123456Z"
        );
    }

    #[test]
    fn rfc3339_agrees_with_a_day_by_day_walk() {
        // Every day from 1969 to 2401 against a naive calendar walk.
        let (mut y, mut m, mut d) = (1969i64, 1i64, 1i64);
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = |y: i64, m: i64| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        for days in -365..158_000i64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn ranges_print_inclusive_or_eof() {
        assert_eq!(range(0, 0), "0..EOF");
        assert_eq!(range(10, 5), "10..14");
        assert_eq!(range(7, u64::MAX), "7..EOF");
        // NFSv4's all-ones length reaches EOF from every offset, 0 included.
        assert_eq!(range(0, u64::MAX), "0..EOF");
        assert_eq!(range(1, u64::MAX - 1), "1..18446744073709551614");
        assert_eq!(range(u64::MAX, 1), "18446744073709551615..EOF");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(cell("plain ü:/"), "plain ü:/");
        assert_eq!(cell("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn tables_pad_all_but_the_last_column() {
        assert_eq!(
            render(&[3, 4, 9], &["a".into(), "bb".into(), "c".into()]),
            "a    bb    c"
        );
    }
}
