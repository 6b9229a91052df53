//! Just enough DER to give a certificate several `O` attributes.
//!
//! rcgen 0.14 keeps one value per attribute type in a subject
//! (rustls/rcgen#81), but Kubernetes reads every `O` of a client certificate as
//! a group. So a multi-group certificate is issued by rcgen with a unique
//! placeholder `O`; its subject is then swapped for the real one and the
//! to-be-signed part re-signed with the CA key.

use rcgen::SigningKey;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const BIT_STRING: u8 = 0x03;

/// id-at-organizationName (2.5.4.10).
pub(super) const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
/// id-at-commonName (2.5.4.3).
pub(super) const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A `Name` of single-attribute RDNs with UTF8String values, in order (as rcgen
/// writes `&str` values).
pub(super) fn name(attrs: &[(&[u8], &str)]) -> Vec<u8> {
    let mut rdns = Vec::new();
    for (oid, value) in attrs {
        let mut atv = tlv(OID, oid);
        atv.extend(tlv(UTF8_STRING, value.as_bytes()));
        rdns.extend(tlv(SET, &tlv(SEQUENCE, &atv)));
    }
    tlv(SEQUENCE, &rdns)
}

/// One TLV split off the front of a byte string.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
    rest: &'a [u8],
}

/// Splits one TLV (single-byte tag) off the front of `input`.
fn split_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some(Tlv {
        tag,
        content: &rest[..len],
        whole: &input[..header + len],
        rest: &rest[len..],
    })
}

/// Replaces the subject `old_name` (exact DER) of `cert_der` with `new_name`
/// and re-signs the certificate with `issuer_key`.
pub(super) fn replace_subject(
    cert_der: &[u8],
    old_name: &[u8],
    new_name: &[u8],
    issuer_key: &impl SigningKey,
) -> Result<Vec<u8>, String> {
    let bad = || "unexpected certificate structure".to_string();
    let cert = split_tlv(cert_der)
        .filter(|t| t.tag == SEQUENCE && t.rest.is_empty())
        .ok_or_else(bad)?;
    let tbs = split_tlv(cert.content)
        .filter(|t| t.tag == SEQUENCE)
        .ok_or_else(bad)?;
    let alg_id = split_tlv(tbs.rest)
        .filter(|t| t.tag == SEQUENCE)
        .ok_or_else(bad)?
        .whole;
    let tbs = tbs.content;
    let at = {
        let mut hits = tbs
            .windows(old_name.len())
            .enumerate()
            .filter(|(_, w)| *w == old_name)
            .map(|(i, _)| i);
        match (hits.next(), hits.next()) {
            (Some(i), None) => i,
            _ => return Err("placeholder subject not found exactly once".into()),
        }
    };
    let mut tbs_content = Vec::with_capacity(tbs.len() + new_name.len());
    tbs_content.extend_from_slice(&tbs[..at]);
    tbs_content.extend_from_slice(new_name);
    tbs_content.extend_from_slice(&tbs[at + old_name.len()..]);
    let new_tbs = tlv(SEQUENCE, &tbs_content);
    let sig = issuer_key.sign(&new_tbs).map_err(|e| e.to_string())?;
    let mut bits = Vec::with_capacity(sig.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&sig);
    let mut body = new_tbs;
    body.extend_from_slice(alg_id);
    body.extend(tlv(BIT_STRING, &bits));
    Ok(tlv(SEQUENCE, &body))
}

/// PEM-encodes a certificate.
pub(super) fn cert_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let enc = tlv(SEQUENCE, &content);
            let t = split_tlv(&enc).unwrap();
            assert_eq!(
                (t.tag, t.content.len(), t.whole.len(), t.rest.len()),
                (SEQUENCE, len, enc.len(), 0)
            );
        }
    }
}
