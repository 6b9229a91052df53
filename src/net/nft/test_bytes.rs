//! Tests only: taking batches apart and building the bytes the kernel
//! expects, shared by the byte-checking tests (tests.rs, diff_tests.rs).

/// Splits a batch into (type, flags, seq, payload) per frame.
pub(super) fn frames(bytes: &[u8]) -> Vec<(u16, u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
        assert!(
            len >= 16 && len % 4 == 0 && len <= rest.len(),
            "bad frame length {len}"
        );
        let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
        let flags = u16::from_ne_bytes(rest[6..8].try_into().unwrap());
        let seq = u32::from_ne_bytes(rest[8..12].try_into().unwrap());
        out.push((kind, flags, seq, &rest[16..len]));
        rest = &rest[len..];
    }
    out
}

/// NLA_F_NESTED.
pub(super) const NESTED: u16 = 0x8000;

/// One netlink attribute: length, type, value, padding to 4 bytes.
pub(super) fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = ((value.len() + 4) as u16).to_ne_bytes().to_vec();
    v.extend(kind.to_ne_bytes());
    v.extend(value);
    v.resize(v.len().div_ceil(4) * 4, 0);
    v
}

/// One attribute holding a big-endian u32 (registers, bases, offsets).
pub(super) fn nla_u32(kind: u16, value: u32) -> Vec<u8> {
    nla(kind, &value.to_be_bytes())
}

/// A NUL-terminated string, as netlink carries names.
pub(super) fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}
