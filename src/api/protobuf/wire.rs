//! The protobuf wire format: varints, tags and length-delimited fields.
//!
//! Only what proto2 messages of the Kubernetes API use: varint (0), 64-bit (1),
//! length-delimited (2) and 32-bit (5). Groups (3, 4) never appear there and are
//! reported as malformed.

/// One field value as it sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub(super) fn wire_name(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "64-bit",
            WireValue::Bytes(_) => "length-delimited",
            WireValue::Fixed32(_) => "32-bit",
        }
    }
}

/// Iterates over the fields of one encoded message.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a base-128 varint (at most 10 bytes).
    pub(super) fn varint(&mut self) -> Result<u64, String> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err("truncated varint".into());
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err("varint longer than 64 bits".into());
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// Reads a little-endian fixed-size value of `n` (4 or 8) bytes.
    pub(super) fn fixed(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {n} bytes announced, {} left",
                    self.buf.len() - self.pos
                )
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next (field number, value), or `None` at the end of the message.
    /// On error, the field number is given when it could be read.
    pub(super) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, (u32, String)> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint().map_err(|e| (0, format!("bad tag: {e}")))?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err((0, format!("invalid field number {number}")));
        }
        let number = number as u32;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint().map_err(|e| (number, e))?),
            1 => WireValue::Fixed64(self.fixed(8).map_err(|e| (number, e))?),
            2 => {
                let len = self.varint().map_err(|e| (number, e))?;
                let len = usize::try_from(len).map_err(|_| (number, "length too large".into()))?;
                WireValue::Bytes(self.take(len).map_err(|e| (number, e))?)
            }
            5 => WireValue::Fixed32(self.fixed(4).map_err(|e| (number, e))? as u32),
            t => return Err((number, format!("unsupported wire type {t}"))),
        };
        Ok(Some((number, value)))
    }
}

/// Encoding helpers, used by the tests to build bodies by hand.
#[cfg(test)]
pub(super) mod encode {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
        varint(out, (u64::from(number) << 3) | u64::from(wire_type));
    }

    pub fn bytes(out: &mut Vec<u8>, number: u32, data: &[u8]) {
        tag(out, number, 2);
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }

    pub fn string(out: &mut Vec<u8>, number: u32, s: &str) {
        bytes(out, number, s.as_bytes());
    }

    pub fn uint(out: &mut Vec<u8>, number: u32, v: u64) {
        tag(out, number, 0);
        varint(out, v);
    }

    /// A message field built by `f`.
    pub fn message(out: &mut Vec<u8>, number: u32, f: impl FnOnce(&mut Vec<u8>)) {
        let mut inner = Vec::new();
        f(&mut inner);
        bytes(out, number, &inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_wire_types() {
        let mut buf = Vec::new();
        encode::uint(&mut buf, 1, 300);
        encode::string(&mut buf, 2, "hi");
        buf.extend_from_slice(&[0x19, 1, 0, 0, 0, 0, 0, 0, 0]); // field 3, fixed64
        buf.extend_from_slice(&[0x25, 2, 0, 0, 0]); // field 4, fixed32
        let mut r = Reader::new(&buf);
        assert_eq!(r.next_field().unwrap(), Some((1, WireValue::Varint(300))));
        assert_eq!(r.next_field().unwrap(), Some((2, WireValue::Bytes(b"hi"))));
        assert_eq!(r.next_field().unwrap(), Some((3, WireValue::Fixed64(1))));
        assert_eq!(r.next_field().unwrap(), Some((4, WireValue::Fixed32(2))));
        assert_eq!(r.next_field().unwrap(), None);
    }

    #[test]
    fn rejects_truncation_and_groups() {
        assert!(Reader::new(&[0x0a, 5, b'a']).next_field().is_err());
        assert!(Reader::new(&[0x08, 0x80]).next_field().is_err());
        assert!(Reader::new(&[0x0b]).next_field().is_err());
        assert!(Reader::new(&[0x00, 0x00]).next_field().is_err());
        let too_long = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(Reader::new(&too_long).next_field().is_err());
    }

    #[test]
    fn negative_int32_uses_ten_bytes() {
        let mut buf = Vec::new();
        encode::uint(&mut buf, 1, -1i64 as u64);
        assert_eq!(buf.len(), 11);
        let mut r = Reader::new(&buf);
        let Some((1, WireValue::Varint(v))) = r.next_field().unwrap() else {
            panic!()
        };
        assert_eq!(v as i64 as i32, -1);
    }
}
