//! A binding as a header holds it: its canonical JSON escaped once more inside the metadata
//! string (`container.escaped_binding`), written from an `UpdateBinding` and read back by a
//! parser that accepts that spelling alone (`canonical.BINDING_PATTERN`).

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBool, PyInt, PyString};

/// Longest label of a binding, in characters (`envelope.MAX_LABEL_CHARS`).
const MAX_LABEL_CHARS: usize = 256;
/// A counter has at most this many digits (`canonical._COUNTER`).
const MAX_COUNTER_DIGITS: usize = 19;

/// Whether a field's value is quoted text or a non-negative integer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Label,
    Counter,
}

/// The binding's fields in the order its canonical JSON sorts them, each with what a header
/// holds before its value (the key, escaped twice, and a label's opening quote).
const FIELDS: [(&str, &str, Kind); 6] = [
    ("attempt", "{\\\"attempt\\\":", Kind::Counter),
    ("base_model", ",\\\"base_model\\\":\\\"", Kind::Label),
    ("num_samples", ",\\\"num_samples\\\":", Kind::Counter),
    ("round", ",\\\"round\\\":", Kind::Counter),
    ("sender", ",\\\"sender\\\":\\\"", Kind::Label),
    ("task", ",\\\"task\\\":\\\"", Kind::Label),
];
/// What follows a label: its closing quote, escaped.
const LABEL_END: &str = "\\\"";
/// What closes the binding.
const BINDING_END: &str = "}";
/// A quote inside a label, escaped twice (`\"` in the binding's JSON, escaped again).
const ESCAPED_QUOTE: &[u8] = b"\\\\\\\"";
/// A backslash inside a label, escaped twice.
const ESCAPED_BACKSLASH: &[u8] = b"\\\\\\\\";

/// The fields' names as Python strings, made once: looking an attribute up by a fresh string
/// would make and hash that string at every blob.
pub(crate) fn field_names(py: Python<'_>) -> &'static [Py<PyString>] {
    static NAMES: GILOnceCell<Vec<Py<PyString>>> = GILOnceCell::new();
    NAMES.get_or_init(py, || {
        FIELDS
            .iter()
            .map(|(field, ..)| PyString::intern(py, field).unbind())
            .collect()
    })
}

/// The smallest value of the counter `field` (`envelope.check_binding`): one sample at least.
fn lowest(field: &str) -> u64 {
    u64::from(field == "num_samples")
}

/// The binding's canonical JSON as a header holds it (`container.escaped_binding`), or None
/// where `check_binding` would refuse a field.
pub(crate) fn escaped_binding(binding: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(160);
    let names = field_names(binding.py());
    for ((field, opening, kind), name) in FIELDS.into_iter().zip(names) {
        out.extend_from_slice(opening.as_bytes());
        let value = binding.getattr(name.bind(binding.py()))?;
        if kind == Kind::Label {
            let Ok(text) = value.downcast::<PyString>() else {
                return Ok(None);
            };
            let text = text.to_cow()?;
            if text.is_empty()
                || text.len() > MAX_LABEL_CHARS
                || !text.bytes().all(|b| (0x20..=0x7e).contains(&b))
            {
                return Ok(None);
            }
            for byte in text.bytes() {
                match byte {
                    b'"' => out.extend_from_slice(ESCAPED_QUOTE),
                    b'\\' => out.extend_from_slice(ESCAPED_BACKSLASH),
                    _ => out.push(byte),
                }
            }
            out.extend_from_slice(LABEL_END.as_bytes());
        } else {
            if !value.is_exact_instance_of::<PyInt>() || value.is_instance_of::<PyBool>() {
                return Ok(None);
            }
            let Ok(counter) = value.extract::<u64>() else {
                return Ok(None);
            };
            if counter > i64::MAX as u64 || counter < lowest(field) {
                return Ok(None);
            }
            out.extend_from_slice(counter.to_string().as_bytes());
        }
    }
    out.extend_from_slice(BINDING_END.as_bytes());
    Ok(Some(out))
}

/// Reads a binding as [`escaped_binding`] writes it, from the start of `bytes`.
pub(crate) struct BindingReader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) at: usize,
}

impl BindingReader<'_> {
    fn literal(&mut self, text: &str) -> Option<()> {
        let end = self.at + text.len();
        (self.bytes.get(self.at..end)? == text.as_bytes()).then(|| self.at = end)
    }

    fn counter(&mut self) -> Option<u64> {
        let digits = self.bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.bytes[self.at..self.at + digits];
        if digits == 0 || digits > MAX_COUNTER_DIGITS || (digits > 1 && text[0] == b'0') {
            return None;
        }
        self.at += digits;
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    fn label(&mut self) -> Option<String> {
        let mut label = String::new();
        loop {
            let rest = &self.bytes[self.at..];
            let (character, width) = if rest.starts_with(ESCAPED_QUOTE) {
                ('"', ESCAPED_QUOTE.len())
            } else if rest.starts_with(ESCAPED_BACKSLASH) {
                ('\\', ESCAPED_BACKSLASH.len())
            } else {
                match rest.first() {
                    Some(&byte)
                        if (0x20..=0x7e).contains(&byte) && byte != b'"' && byte != b'\\' =>
                    {
                        (byte as char, 1)
                    }
                    _ => break,
                }
            };
            label.push(character);
            self.at += width;
        }
        (1..=MAX_LABEL_CHARS)
            .contains(&label.len())
            .then_some(label)
    }
}

/// A field's value as a header holds it.
pub(crate) enum Value {
    Label(String),
    Counter(u64),
}

/// The fields of a binding that [`escaped_binding`] wrote, by name, from the reader's place;
/// None for any other bytes, or a counter `check_binding` would refuse.
pub(crate) fn read_binding(reader: &mut BindingReader<'_>) -> Option<Vec<(&'static str, Value)>> {
    let mut fields = Vec::with_capacity(FIELDS.len());
    for (field, opening, kind) in FIELDS {
        reader.literal(opening)?;
        let value = if kind == Kind::Label {
            let label = reader.label()?;
            reader.literal(LABEL_END)?;
            Value::Label(label)
        } else {
            let counter = reader.counter()?;
            if counter > i64::MAX as u64 || counter < lowest(field) {
                return None;
            }
            Value::Counter(counter)
        };
        fields.push((field, value));
    }
    reader.literal(BINDING_END)?;
    Some(fields)
}
