//! CSV as spreadsheets read it (RFC 4180: a field holding a comma, a quote or a line break is
//! quoted, quotes doubled), for every table the engine writes or reads back: Explore's exports
//! and the planted-copies ground truth. File names are the fields that need it ("IMG_1, copy.jpg",
//! "Paris, 2019/"), and one quoting rule for writing and reading keeps the two in step.
//!
//! The quoting itself is `csv-core`'s; the `csv` crate on top of it would turn on serde's default
//! features, which rebuilds every crate Burn is built from.

use csv_core::{ReadRecordResult, WriteResult};

/// A CSV document built record by record, `\n` after each record.
pub struct CsvText {
    writer: csv_core::Writer,
    text: Vec<u8>,
    buffer: [u8; 1024],
}

impl CsvText {
    /// A document that starts with the `header` record.
    pub fn new(header: &[&str]) -> Self {
        let mut text = Self {
            writer: csv_core::Writer::new(),
            text: Vec::new(),
            buffer: [0; 1024],
        };
        text.record(header);
        text
    }

    /// Appends one record, quoting the fields that need it.
    pub fn record<S: AsRef<str>>(&mut self, fields: &[S]) {
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.drain(|writer, out| writer.delimiter(out));
            }
            let mut input = field.as_ref().as_bytes();
            loop {
                let (result, read, wrote) = self.writer.field(input, &mut self.buffer);
                self.text.extend_from_slice(&self.buffer[..wrote]);
                input = &input[read..];
                if result == WriteResult::InputEmpty {
                    break;
                }
            }
        }
        self.drain(|writer, out| writer.terminator(out));
    }

    /// Runs a write that takes no input (a delimiter, a terminator) until it has all been written.
    fn drain(
        &mut self,
        mut write: impl FnMut(&mut csv_core::Writer, &mut [u8]) -> (WriteResult, usize),
    ) {
        loop {
            let (result, wrote) = write(&mut self.writer, &mut self.buffer);
            self.text.extend_from_slice(&self.buffer[..wrote]);
            if result == WriteResult::InputEmpty {
                break;
            }
        }
    }

    /// The document.
    pub fn into_string(self) -> String {
        // Only whole UTF-8 fields and ASCII punctuation were written.
        String::from_utf8(self.text).expect("CSV of UTF-8 fields is UTF-8")
    }
}

/// Every record of `text`, header included, each a list of unquoted fields. Blank lines are
/// skipped; a malformed quote is read the way spreadsheets read it rather than refused (as
/// `csv-core` does), so the caller checks each record's shape.
pub fn records(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv_core::Reader::new();
    let mut input = text.as_bytes();
    // No record unquotes to more bytes, or more fields, than the whole text has.
    let mut output = vec![0u8; input.len() + 1];
    let mut ends = vec![0usize; input.len() + 1];
    let (mut written, mut fields) = (0, 0);
    let mut records = Vec::new();
    loop {
        let (result, read, wrote, ended) =
            reader.read_record(input, &mut output[written..], &mut ends[fields..]);
        input = &input[read..];
        written += wrote;
        fields += ended;
        match result {
            ReadRecordResult::Record => {
                let mut start = 0;
                let record = ends[..fields]
                    .iter()
                    .map(|&end| {
                        let field = String::from_utf8_lossy(&output[start..end]).into_owned();
                        start = end;
                        field
                    })
                    .collect();
                records.push(record);
                (written, fields) = (0, 0);
            }
            ReadRecordResult::End => return records,
            // The last record has no line break: the next call, with no input, ends it.
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {
                unreachable!("the buffers hold the whole text")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_commas_quotes_and_line_breaks_round_trip() {
        let names = [
            "a.jpg",
            "IMG_1, copy.jpg",
            "b \"old\".png",
            "two\nlines.png",
            "",
        ];
        let mut text = CsvText::new(&["name", "n"]);
        for (i, name) in names.iter().enumerate() {
            text.record(&[name.to_string(), i.to_string()]);
        }
        let text = text.into_string();
        assert!(
            text.starts_with("name,n\na.jpg,0\n\"IMG_1, copy.jpg\",1\n\"b \"\"old\"\".png\",2\n"),
            "{text}"
        );
        let read = records(&text);
        assert_eq!(read[0], ["name", "n"]);
        let back: Vec<&str> = read[1..].iter().map(|record| record[0].as_str()).collect();
        assert_eq!(back, names);
        // Without a final line break, and with blank lines, the same records come back.
        let loose = "name,n\n\na.jpg,0";
        assert_eq!(records(loose), [vec!["name", "n"], vec!["a.jpg", "0"]]);
    }
}
