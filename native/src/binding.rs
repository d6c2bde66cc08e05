//! A binding as a header holds it: its canonical JSON escaped once more inside the metadata
//! string (`container.escaped_binding`), written from an `UpdateBinding` and read back by a
//! parser that accepts that spelling alone (`canonical.BINDING_PATTERN`).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};

/// Longest label of a binding, in characters (`envelope.MAX_LABEL_CHARS`).
const MAX_LABEL_CHARS: usize = 256;
/// A counter has at most this many digits (`canonical._COUNTER`).
const MAX_COUNTER_DIGITS: usize = 19;

/// The binding's canonical JSON as a header holds it (`container.escaped_binding`), or None
/// where `check_binding` would refuse a field.
pub(crate) fn escaped_binding(binding: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(160);
    let fields: [(&str, &str, bool); 6] = [
        ("attempt", "{\\\"attempt\\\":", false),
        ("base_model", ",\\\"base_model\\\":\\\"", true),
        ("num_samples", ",\\\"num_samples\\\":", false),
        ("round", ",\\\"round\\\":", false),
        ("sender", ",\\\"sender\\\":\\\"", true),
        ("task", ",\\\"task\\\":\\\"", true),
    ];
    for (field, opening, is_label) in fields {
        out.extend_from_slice(opening.as_bytes());
        let value = binding.getattr(field)?;
        if is_label {
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
                    b'"' => out.extend_from_slice(b"\\\\\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\\\\\"),
                    _ => out.push(byte),
                }
            }
            out.extend_from_slice(b"\\\"");
        } else {
            if !value.is_exact_instance_of::<PyInt>() || value.is_instance_of::<PyBool>() {
                return Ok(None);
            }
            let Ok(counter) = value.extract::<i64>() else {
                return Ok(None);
            };
            if counter < i64::from(field == "num_samples") {
                return Ok(None);
            }
            out.extend_from_slice(counter.to_string().as_bytes());
        }
    }
    out.push(b'}');
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
            let (character, width) = if rest.starts_with(b"\\\\\\\"") {
                ('"', 4)
            } else if rest.starts_with(b"\\\\\\\\") {
                ('\\', 4)
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

/// What a header's binding says, in `UpdateBinding`'s field order less the types.
pub(crate) struct Binding {
    pub(crate) attempt: u64,
    pub(crate) base_model: String,
    pub(crate) num_samples: u64,
    pub(crate) round: u64,
    pub(crate) sender: String,
    pub(crate) task: String,
}

pub(crate) fn read_binding(reader: &mut BindingReader<'_>) -> Option<Binding> {
    reader.literal("{\\\"attempt\\\":")?;
    let attempt = reader.counter()?;
    reader.literal(",\\\"base_model\\\":\\\"")?;
    let base_model = reader.label()?;
    reader.literal("\\\",\\\"num_samples\\\":")?;
    let num_samples = reader.counter()?;
    reader.literal(",\\\"round\\\":")?;
    let round = reader.counter()?;
    reader.literal(",\\\"sender\\\":\\\"")?;
    let sender = reader.label()?;
    reader.literal("\\\",\\\"task\\\":\\\"")?;
    let task = reader.label()?;
    reader.literal("\\\"}")?;
    let limit = i64::MAX as u64;
    (attempt <= limit && round <= limit && (1..=limit).contains(&num_samples)).then_some(Binding {
        attempt,
        base_model,
        num_samples,
        round,
        sender,
        task,
    })
}
