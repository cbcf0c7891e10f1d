//! The serde path: serde_json's streaming deserializer takes over from the fast path's last
//! checkpoint and reads the rest of the upload, whatever its shape, one position at a time.
//!
//! It is the reference for what a GPD upload is: every upload the fast path does not read to
//! its end (other keys, a position that is not an object, malformed or truncated JSON, a read
//! error) ends here, so its errors, offsets, lines and columns are serde_json's own.

use std::io::{self, BufReader, Read};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::json::Json;
use super::window::{Replay, Resume};
use super::{GpdError, Reader};
use crate::payment::PaymentNotice;

impl<F: FnMut(PaymentNotice)> Reader<F> {
    /// Reads `replay` to the end, from the checkpoint `from`.
    pub(super) fn replay<R: Read>(&mut self, replay: Replay<R>, from: Resume) -> Result<(), GpdError> {
        let mut input = BufReader::new(Counted { inner: replay.source, bytes: 0 });
        let mut json = serde_json::Deserializer::from_reader(&mut input);
        let upload = Upload { reader: &mut *self, skip_first: from == Resume::NextPosition };
        let found = upload.deserialize(&mut json).and_then(|found| {
            json.end()?;
            Ok(found)
        });
        drop(json);
        // Bytes consumed: read from the source minus what waits in the buffer. serde_json
        // peeks one byte ahead, so an error's offset may be one past the culprit.
        let consumed = input.get_ref().bytes.saturating_sub(input.buffer().len() as u64);
        let offset = (replay.offset + consumed).saturating_sub(replay.prefix);
        let positions_read = self.summary.positions;
        match found {
            Ok(true) => Ok(()),
            Ok(false) => Err(GpdError::NoPaymentPositions),
            Err(source) if source.is_io() => Err(GpdError::Read { positions_read, offset, source: source.into() }),
            Err(source) => Err(GpdError::Json { positions_read, offset, source }),
        }
    }
}

/// Counts the bytes read through it, for error offsets.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes += read as u64;
        Ok(read)
    }
}

/// The top-level object: finds `paymentPositions` and skips every other key.
/// Its value says whether `paymentPositions` was there.
struct Upload<'r, F> {
    reader: &'r mut Reader<F>,
    /// The array's first element is the one a resume prefix put there, not a position.
    skip_first: bool,
}

impl<'de, F: FnMut(PaymentNotice)> DeserializeSeed<'de> for Upload<'_, F> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(PaymentNotice)> Visitor<'de> for Upload<'_, F> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a GPD upload object {\"paymentPositions\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "paymentPositions" {
                map.next_value::<IgnoredAny>()?;
            } else if found {
                return Err(de::Error::duplicate_field("paymentPositions"));
            } else {
                map.next_value_seed(Positions { reader: &mut *self.reader, skip_first: self.skip_first })?;
                found = true;
            }
        }
        Ok(found)
    }
}

/// The `paymentPositions` array: each element is parsed alone and handed on, never collected.
struct Positions<'r, F> {
    reader: &'r mut Reader<F>,
    skip_first: bool,
}

impl<'de, F: FnMut(PaymentNotice)> DeserializeSeed<'de> for Positions<'_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(PaymentNotice)> Visitor<'de> for Positions<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of payment positions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut positions: A) -> Result<(), A::Error> {
        if self.skip_first {
            positions.next_element::<IgnoredAny>()?;
        }
        while let Some(position) = positions.next_element::<Json<'de>>()? {
            self.reader.position(&position);
        }
        Ok(())
    }
}
