//! What every source format shares: reading CSV rows with their line numbers, and the
//! account of what became of each row (event, bad row, or skipped with a reason).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

use crate::event::Event;

/// A row that could not be read: reported on stderr with its line number, never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// Short, stable reason used to count bad rows (e.g. `bad price`).
    pub reason: String,
    /// What exactly was wrong with this row.
    pub detail: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.reason, self.detail)
    }
}

/// What a parser made of a file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The events to send, in file order (a grouped purchase sits where its first line was).
    pub events: Vec<Event>,
    /// Data rows read (the header is not counted).
    pub rows: u64,
    /// Rows that could not be read, in file order.
    pub bad_rows: Vec<BadRow>,
    /// Rows deliberately not imported, counted by reason (they are not errors).
    pub skipped: BTreeMap<String, u64>,
    /// Rows imported with an adjustment worth knowing about, counted by what was done.
    pub notes: BTreeMap<String, u64>,
}

impl Parsed {
    /// Records a bad row.
    pub fn bad(&mut self, line: u64, reason: &str, detail: impl Into<String>) {
        self.bad_rows.push(BadRow {
            line,
            reason: reason.to_string(),
            detail: detail.into(),
        });
    }

    /// Counts a row skipped for `reason`.
    pub fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
    }

    /// Counts an adjustment made while importing a row.
    pub fn note(&mut self, what: &str) {
        *self.notes.entry(what.to_string()).or_default() += 1;
    }

    /// Bad rows counted by reason.
    pub fn bad_row_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for bad in &self.bad_rows {
            *counts.entry(bad.reason.clone()).or_default() += 1;
        }
        counts
    }

    /// The line and reason of every bad row, in file order.
    pub fn bad_row_lines(&self) -> Vec<(u64, &str)> {
        self.bad_rows
            .iter()
            .map(|b| (b.line, b.reason.as_str()))
            .collect()
    }
}

/// Why a file could not be read at all (as opposed to single bad rows).
#[derive(Debug)]
pub enum InputError {
    /// Reading failed.
    Io(io::Error),
    /// The header lacks columns the format needs: probably the wrong `--format`.
    MissingColumns(Vec<String>),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Io(e) => write!(f, "cannot read the file: {e}"),
            InputError::MissingColumns(cols) => write!(
                f,
                "the header lacks the column(s) {} (is --format right?)",
                cols.join(", ")
            ),
        }
    }
}

impl std::error::Error for InputError {}

impl From<io::Error> for InputError {
    fn from(e: io::Error) -> Self {
        InputError::Io(e)
    }
}

/// One data row of a CSV file, with access to its fields by column name.
pub struct Row<'a> {
    /// 1-based line where the row starts.
    pub line: u64,
    record: &'a csv::StringRecord,
    /// The columns the format asked for, and where each is in the record.
    wanted: &'a [&'a str],
    columns: &'a [usize],
}

impl Row<'_> {
    /// The field of column `name` (one the format asked for, see [`for_each_row`]), trimmed.
    /// A missing field, or a column not asked for, reads as empty.
    pub fn get(&self, name: &str) -> &str {
        self.raw(name).trim()
    }

    /// The field of column `name`, trimmed, which must be present and pass `valid`.
    ///
    /// # Errors
    /// `("missing field", "{name} is empty")`, or `(bad, "{name} {value:?}")` when not valid.
    pub fn required(
        &self,
        name: &str,
        bad: &'static str,
        valid: impl Fn(&str) -> bool,
    ) -> Result<&str, RowError> {
        let value = self.get(name);
        if value.is_empty() {
            return Err(("missing field", format!("{name} is empty")));
        }
        if !valid(value) {
            return Err((bad, format!("{name} {value:?}")));
        }
        Ok(value)
    }

    /// The field of column `name`, untrimmed.
    pub fn raw(&self, name: &str) -> &str {
        debug_assert!(
            self.wanted.contains(&name),
            "column {name} was not asked for"
        );
        self.wanted
            .iter()
            .position(|w| *w == name)
            .and_then(|i| self.columns.get(i))
            .and_then(|&c| self.record.get(c))
            .unwrap_or("")
    }
}

/// Turns CRLF line ends into LF on the way to the CSV reader (whose record positions are off
/// by one line in CRLF files: it counts a record as starting at the LF of the previous line's
/// CRLF), and remembers the last byte of the file, to tell whether it ends with a line end.
struct Normalize<R> {
    inner: R,
    last: Rc<Cell<Option<u8>>>,
    pending_cr: bool,
    queue: Vec<u8>,
    at: usize,
    chunk: Vec<u8>,
}

impl<R: Read> Normalize<R> {
    fn new(inner: R, last: Rc<Cell<Option<u8>>>) -> Self {
        Normalize {
            inner,
            last,
            pending_cr: false,
            queue: Vec::new(),
            at: 0,
            chunk: vec![0; 64 * 1024],
        }
    }
}

impl<R: Read> Read for Normalize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.queue.len() {
            self.queue.clear();
            self.at = 0;
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                if self.pending_cr {
                    self.pending_cr = false;
                    self.queue.push(b'\r');
                    break;
                }
                return Ok(0);
            }
            self.last.set(self.chunk.get(n - 1).copied());
            for &b in &self.chunk[..n] {
                if self.pending_cr && b != b'\n' {
                    self.queue.push(b'\r');
                }
                self.pending_cr = b == b'\r';
                if !self.pending_cr {
                    self.queue.push(b);
                }
            }
        }
        let n = buf.len().min(self.queue.len() - self.at);
        buf[..n].copy_from_slice(&self.queue[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What a row reader says about a row it cannot use: the reason (counted) and the detail (printed).
pub type RowError = (&'static str, String);

/// Reads a file like [`for_each_row`] into a new [`Parsed`], recording each row that `on_row`
/// refuses as a bad row with its line.
///
/// # Errors
/// As [`for_each_row`].
pub fn read_rows<R: Read>(
    input: R,
    wanted: &[&str],
    limit: Option<u64>,
    mut on_row: impl FnMut(&Row<'_>, &mut Parsed) -> Result<(), RowError>,
) -> Result<Parsed, InputError> {
    let mut parsed = Parsed::default();
    for_each_row(input, wanted, limit, &mut parsed, |row, parsed| {
        if let Err((reason, detail)) = on_row(row, parsed) {
            parsed.bad(row.line, reason, detail);
        }
    })?;
    Ok(parsed)
}

/// Reads a CSV file with a header row and calls `on_row` for each data row, in order, with the
/// fields of `wanted` columns available through [`Row::get`] by their name.
///
/// Rows that cannot be read as CSV, that are not UTF-8, or whose number of fields differs from
/// the header's are recorded as bad rows in `parsed` (a short row at the very end of a file that
/// does not end with a line end is reported as cut off) and `on_row` is not called for them.
/// `limit` stops after that many data rows. `parsed.rows` counts every data row read.
pub fn for_each_row<R: Read>(
    input: R,
    wanted: &[&str],
    limit: Option<u64>,
    parsed: &mut Parsed,
    mut on_row: impl FnMut(&Row<'_>, &mut Parsed),
) -> Result<(), InputError> {
    let last_byte = Rc::new(Cell::new(None));
    let tracker = Normalize::new(input, Rc::clone(&last_byte));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(tracker);
    let header = reader
        .headers()
        .map_err(|e| InputError::Io(io::Error::other(e.to_string())))?
        .clone();
    let mut columns = Vec::with_capacity(wanted.len());
    let mut missing = Vec::new();
    for name in wanted {
        match header.iter().position(|h| h.trim() == *name) {
            Some(c) => columns.push(c),
            None => missing.push((*name).to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(InputError::MissingColumns(missing));
    }
    let width = header.len();

    // One row of look-ahead, so the last row is known to be the last one.
    let mut pending: Option<Result<csv::StringRecord, csv::Error>> = None;
    let mut records = reader.records();
    loop {
        if limit.is_some_and(|l| parsed.rows >= l) {
            break;
        }
        let current = match pending.take() {
            Some(r) => r,
            None => match records.next() {
                Some(r) => r,
                None => break,
            },
        };
        pending = records.next();
        let is_last = pending.is_none();
        parsed.rows += 1;
        match current {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                if record.len() != width {
                    let cut = is_last && last_byte.get() != Some(b'\n');
                    if cut {
                        parsed.bad(
                            line,
                            "row cut off",
                            format!(
                                "the file ends mid-row: {} of {} fields",
                                record.len(),
                                width
                            ),
                        );
                    } else {
                        parsed.bad(
                            line,
                            "wrong number of fields",
                            format!("{} fields, the header has {}", record.len(), width),
                        );
                    }
                    continue;
                }
                let row = Row {
                    line,
                    record: &record,
                    wanted,
                    columns: &columns,
                };
                on_row(&row, parsed);
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => {
                        parsed.bad(line, "not UTF-8", e.to_string());
                    }
                    csv::ErrorKind::Io(_) => {
                        return Err(InputError::Io(io::Error::other(e.to_string())));
                    }
                    _ => parsed.bad(line, "unreadable CSV", e.to_string()),
                }
            }
        }
    }
    Ok(())
}

/// What every source reader ([`crate::rees46`], [`crate::gms`], [`crate::uci`]) uses: the event
/// types and id checks, and the row reading of this module. `use crate::source::reader::*;`.
pub mod reader {
    pub use super::{read_rows, InputError, Parsed, Row, RowError};
    pub use crate::event::{
        is_valid_id, is_valid_product_id, is_valid_shopper_id, name_field, Event, EventType, Line,
        Product, MAX_QUANTITY,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str, limit: Option<u64>) -> (Parsed, Vec<(u64, String)>) {
        let mut parsed = Parsed::default();
        let mut seen = Vec::new();
        for_each_row(
            text.as_bytes(),
            &["b", "a"],
            limit,
            &mut parsed,
            |row, _| {
                seen.push((row.line, format!("{}|{}", row.get("b"), row.get("a"))));
            },
        )
        .expect("readable");
        (parsed, seen)
    }

    #[test]
    fn rows_come_with_their_line_numbers_and_columns_by_name() {
        let (parsed, seen) = collect("a,b\n1, 2\n3,4\n", None);
        assert_eq!(parsed.rows, 2);
        assert_eq!(seen, vec![(2, "2|1".to_string()), (3, "4|3".to_string())]);
        assert!(parsed.bad_rows.is_empty());
    }

    #[test]
    fn a_short_last_row_without_line_end_is_cut_off() {
        let (parsed, seen) = collect("a,b\n1,2\n3", None);
        assert_eq!(parsed.rows, 2);
        assert_eq!(seen.len(), 1);
        assert_eq!(
            parsed.bad_rows,
            vec![BadRow {
                line: 3,
                reason: "row cut off".into(),
                detail: "the file ends mid-row: 1 of 2 fields".into()
            }]
        );
    }

    #[test]
    fn crlf_files_have_the_same_line_numbers() {
        let (parsed, seen) = collect("a,b\r\n1,2\r\n\"x\r\ny\",4\r\n5,6\r\n7", None);
        assert_eq!(parsed.rows, 4);
        assert_eq!(
            seen,
            vec![
                (2, "2|1".to_string()),
                (3, "4|x\ny".to_string()),
                (5, "6|5".to_string())
            ]
        );
        assert_eq!(parsed.bad_rows.len(), 1);
        assert_eq!(parsed.bad_rows[0].line, 6);
        assert_eq!(parsed.bad_rows[0].reason, "row cut off");
    }

    #[test]
    fn lone_carriage_returns_are_kept() {
        let mut reader = Normalize::new(&b"a\rb\r\nc\r"[..], Rc::new(Cell::new(None)));
        let mut out = Vec::new();
        let mut one = [0u8; 1];
        // One byte at a time, the hardest case for the look-ahead.
        while reader.read(&mut one).expect("reads") == 1 {
            out.push(one[0]);
        }
        assert_eq!(out, b"a\rb\nc\r");
        assert_eq!(reader.last.get(), Some(b'\r'));
    }

    #[test]
    fn a_short_row_inside_the_file_is_a_wrong_number_of_fields() {
        let (parsed, seen) = collect("a,b\n1\n3,4\n5,6,7\n", None);
        assert_eq!(seen, vec![(3, "4|3".to_string())]);
        let reasons = parsed.bad_row_lines();
        assert_eq!(
            reasons,
            vec![(2, "wrong number of fields"), (4, "wrong number of fields")]
        );
    }

    #[test]
    fn invalid_utf8_is_a_bad_row_and_reading_goes_on() {
        let mut bytes = b"a,b\n1,2\n".to_vec();
        bytes.extend_from_slice(b"\xff\xfe,x\n5,6\n");
        let mut parsed = Parsed::default();
        let mut lines = Vec::new();
        for_each_row(&bytes[..], &["a"], None, &mut parsed, |row, _| {
            lines.push(row.line)
        })
        .expect("readable");
        assert_eq!(lines, vec![2, 4]);
        assert_eq!(parsed.bad_rows.len(), 1);
        assert_eq!(parsed.bad_rows[0].line, 3);
        assert_eq!(parsed.bad_rows[0].reason, "not UTF-8");
    }

    #[test]
    fn limit_stops_after_n_data_rows() {
        let (parsed, seen) = collect("a,b\n1,2\n3,4\n5,6\n", Some(2));
        assert_eq!(parsed.rows, 2);
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn missing_columns_are_an_input_error() {
        let mut parsed = Parsed::default();
        let err = for_each_row(
            "x,y\n1,2\n".as_bytes(),
            &["a", "y", "b"],
            None,
            &mut parsed,
            |_, _| {},
        )
        .expect_err("must fail");
        match err {
            InputError::MissingColumns(cols) => assert_eq!(cols, vec!["a", "b"]),
            other => panic!("unexpected {other}"),
        }
    }
}
