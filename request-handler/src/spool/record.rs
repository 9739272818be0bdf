//! A spooled message as it is kept on disk: its envelope and its body, byte for byte, in one
//! record. Pure: encoding and decoding, no I/O.
//!
//! Layout (integers big-endian): version `1` (u8), spooled at and received at (i64 µs since the
//! epoch), retry count (u32), body format (u8: 0 JSON, 1 form), the source (u8 length + bytes),
//! the delivery id and the event type (each u16 length + bytes), the body's length (u32) and
//! the body. Decoding checks every field by the rules the handler checked it by and the body's
//! length, so a record is read back as the message that was answered 200 or refused as
//! unreadable, never as a shorter one. (The store writes records whole: see `store`.)

use chrono::{DateTime, Utc};
use webhook_core::envelope::{DeliveryId, Envelope, EventType, SourceName};
use webhook_core::payload::BodyFormat;

const VERSION: u8 = 1;
/// Bytes before the variable-length fields: version, two times, retry count, format.
const FIXED: usize = 1 + 8 + 8 + 4 + 1;

/// The most a record adds to its body: the fixed fields and the longest source, delivery id
/// and event type.
pub(crate) const MAX_OVERHEAD: usize = FIXED + 1 + 64 + 2 + 200 + 2 + 128 + 4;

/// Why a record cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable spool record: {0}")]
pub(crate) struct Unreadable(String);

/// A message read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spooled {
    /// The message's envelope, as it was when the request was answered.
    pub(crate) envelope: Envelope,
    /// When it was written to the spool.
    pub(crate) spooled_at: DateTime<Utc>,
    bytes: Vec<u8>,
    body_start: usize,
}

impl Spooled {
    /// The body, byte for byte.
    pub(crate) fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }
}

/// The record of `envelope` and `body`, written to the spool at `spooled_at`. The caller has
/// validated the envelope (the handler builds it from checked values only).
pub(crate) fn encode(envelope: &Envelope, spooled_at: DateTime<Utc>, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(MAX_OVERHEAD + body.len());
    bytes.push(VERSION);
    bytes.extend_from_slice(&spooled_at.timestamp_micros().to_be_bytes());
    bytes.extend_from_slice(&envelope.received_at.timestamp_micros().to_be_bytes());
    bytes.extend_from_slice(&envelope.retry_count.to_be_bytes());
    bytes.push(match envelope.body_format {
        BodyFormat::Json => 0,
        BodyFormat::Form => 1,
    });
    let field = |bytes: &mut Vec<u8>, text: &str, wide: bool| {
        if wide {
            bytes.extend_from_slice(&u16::try_from(text.len()).unwrap_or(u16::MAX).to_be_bytes());
        } else {
            bytes.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
        }
        bytes.extend_from_slice(text.as_bytes());
    };
    field(&mut bytes, &envelope.source, false);
    field(&mut bytes, &envelope.delivery_id, true);
    field(&mut bytes, &envelope.event_type, true);
    bytes.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// When the record was spooled, read from its fixed part alone.
pub(crate) fn spooled_at(bytes: &[u8]) -> Option<DateTime<Utc>> {
    if bytes.first() != Some(&VERSION) {
        return None;
    }
    DateTime::from_timestamp_micros(i64::from_be_bytes(bytes.get(1..9)?.try_into().ok()?))
}

/// Reads a record back, checking every field.
pub(crate) fn decode(bytes: Vec<u8>) -> Result<Spooled, Unreadable> {
    let fail = |what: &str| Unreadable(what.to_owned());
    match bytes.first() {
        Some(&VERSION) => {}
        Some(other) => return Err(Unreadable(format!("version {other}, not {VERSION}"))),
        None => return Err(fail("empty")),
    }
    let mut reader = Reader { bytes: &bytes, at: 1 };
    let spooled_at = reader.time().ok_or_else(|| fail("spooled at"))?;
    let received_at = reader.time().ok_or_else(|| fail("received at"))?;
    let retry_count = u32::from_be_bytes(
        reader
            .take(4)
            .ok_or_else(|| fail("retry count"))?
            .try_into()
            .unwrap_or_default(),
    );
    let body_format = match reader.take(1).ok_or_else(|| fail("body format"))? {
        [0] => BodyFormat::Json,
        [1] => BodyFormat::Form,
        _ => return Err(fail("body format")),
    };
    let source = reader.text(false).ok_or_else(|| fail("source"))?;
    let source = SourceName::parse(source).map_err(|why| Unreadable(format!("source: {why}")))?;
    let delivery_id = reader.text(true).ok_or_else(|| fail("delivery id"))?;
    let delivery_id = DeliveryId::parse(delivery_id).map_err(|why| Unreadable(format!("delivery id: {why}")))?;
    let event_type = reader.text(true).ok_or_else(|| fail("event type"))?;
    let event_type = EventType::parse(event_type).map_err(|why| Unreadable(format!("event type: {why}")))?;
    let body_length = reader.take(4).ok_or_else(|| fail("body length"))?;
    let body_length = u32::from_be_bytes(body_length.try_into().unwrap_or_default());
    let body_start = reader.at;
    if usize::try_from(body_length).ok() != Some(bytes.len() - body_start) {
        return Err(Unreadable(format!(
            "the body is {} bytes, not {body_length}",
            bytes.len() - body_start
        )));
    }
    let mut envelope = Envelope::new(&source, &delivery_id, &event_type, received_at, body_format);
    envelope.retry_count = retry_count;
    Ok(Spooled {
        envelope,
        spooled_at,
        bytes,
        body_start,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let taken = self.bytes.get(self.at..self.at.checked_add(count)?)?;
        self.at += count;
        Some(taken)
    }

    fn time(&mut self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text(&mut self, wide: bool) -> Option<&'a str> {
        let length = if wide {
            usize::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
        } else {
            usize::from(*self.take(1)?.first()?)
        };
        std::str::from_utf8(self.take(length)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(format: BodyFormat) -> Envelope {
        let received_at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        Envelope::new(
            &SourceName::parse("github").unwrap(),
            &DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").unwrap(),
            &EventType::parse("push").unwrap(),
            received_at,
            format,
        )
    }

    #[test]
    fn a_record_gives_back_the_envelope_and_the_body_byte_for_byte() {
        let spooled_at = DateTime::from_timestamp_micros(1_790_000_001_000_001).unwrap();
        let body = b"{\"a\":\"\xc3\xa9\"}\r\n\x00 trailing";
        for format in [BodyFormat::Json, BodyFormat::Form] {
            let mut envelope = envelope(format);
            envelope.retry_count = 3;
            let bytes = encode(&envelope, spooled_at, body);
            assert!(bytes.len() <= MAX_OVERHEAD + body.len());
            assert_eq!(super::spooled_at(&bytes), Some(spooled_at));
            let read = decode(bytes).unwrap();
            assert_eq!(read.envelope, envelope);
            assert_eq!(read.spooled_at, spooled_at);
            assert_eq!(read.body(), body);
        }
        let empty = decode(encode(&envelope(BodyFormat::Json), spooled_at, b"")).unwrap();
        assert_eq!(empty.body(), b"");
    }

    #[test]
    fn a_cut_or_altered_record_is_unreadable_rather_than_another_message() {
        let bytes = encode(&envelope(BodyFormat::Json), Utc::now(), b"{}");
        // Cut anywhere: never decoded as a shorter message.
        for length in 0..bytes.len() {
            assert!(decode(bytes[..length].to_vec()).is_err(), "cut at {length}");
        }
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert_eq!(
            decode(other_version).unwrap_err().to_string(),
            "unreadable spool record: version 2, not 1"
        );
        let mut longer = bytes.clone();
        longer.push(b' ');
        assert_eq!(
            decode(longer).unwrap_err().to_string(),
            "unreadable spool record: the body is 3 bytes, not 2"
        );
        let mut bad_source = bytes;
        bad_source[FIXED + 1] = b'G'; // "Github": not a source name
        assert!(decode(bad_source).unwrap_err().to_string().contains("source"));
    }
}
