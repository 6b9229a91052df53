//! The kernel's answers to a batch: one ack or error per message, matched
//! back to the message by sequence number.

use std::collections::HashMap;

use nix::errno::Errno;

use super::batch::{Encoded, Op};
use super::error::NftError;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
/// The error reply carries only the request's header, not the whole request.
const NLM_F_CAPPED: u16 = 0x100;
/// Extended-ack TLVs follow the (possibly capped) request.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Ack {
        seq: u32,
    },
    Error {
        seq: u32,
        errno: Errno,
        detail: Option<String>,
    },
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Every NLMSG_ERROR frame in one datagram; other frame types are skipped.
pub(crate) fn parse(datagram: &[u8]) -> Result<Vec<Reply>, String> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < datagram.len() {
        let frame = &datagram[off..];
        let len = u32_at(frame, 0).ok_or("truncated netlink header")? as usize;
        if len < NLMSG_HDRLEN || len > frame.len() {
            return Err(format!(
                "netlink frame length {len} with {} bytes left",
                frame.len()
            ));
        }
        let frame = &frame[..len];
        let kind = u16_at(frame, 4).ok_or("truncated netlink header")?;
        let flags = u16_at(frame, 6).ok_or("truncated netlink header")?;
        let seq = u32_at(frame, 8).ok_or("truncated netlink header")?;
        if kind == NLMSG_ERROR {
            let body = &frame[NLMSG_HDRLEN..];
            let code = u32_at(body, 0).ok_or("truncated NLMSG_ERROR")? as i32;
            if code == 0 {
                out.push(Reply::Ack { seq });
            } else {
                out.push(Reply::Error {
                    seq,
                    errno: Errno::from_raw(code.saturating_neg()),
                    detail: ext_ack_msg(body, flags),
                });
            }
        }
        off += align4(len);
    }
    Ok(out)
}

/// The NLMSGERR_ATTR_MSG text, if the kernel attached one.
fn ext_ack_msg(body: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32_at(body, 4)? as usize
    };
    let mut tlvs = body.get(4 + align4(request_len)..)?;
    while tlvs.len() >= 4 {
        let len = u16_at(tlvs, 0)? as usize;
        let kind = u16_at(tlvs, 2)?;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|&b| b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get(align4(len)..)?;
    }
    None
}

/// The errno and extended-ack text of a refusal.
type Refusal = (Errno, Option<String>);

/// Collects the replies to one batch until every message is answered.
#[derive(Debug)]
pub(crate) struct Tally {
    begin_seq: u32,
    index_of: HashMap<u32, usize>,
    answers: Vec<Option<Result<(), Refusal>>>,
    refused: Option<Refusal>,
}

impl Tally {
    pub(crate) fn new(enc: &Encoded) -> Self {
        Self {
            begin_seq: enc.begin_seq,
            index_of: enc.seqs.iter().enumerate().map(|(i, s)| (*s, i)).collect(),
            answers: vec![None; enc.seqs.len()],
            refused: None,
        }
    }

    pub(crate) fn feed(&mut self, reply: Reply) {
        let (seq, answer) = match reply {
            Reply::Ack { seq } => (seq, Ok(())),
            Reply::Error { seq, errno, detail } => (seq, Err((errno, detail))),
        };
        if seq == self.begin_seq {
            // An error on the batch-begin marker stands for the whole batch:
            // refused up front (EPERM, no nf_tables) or failed at commit.
            if let Err(e) = answer {
                self.refused = Some(e);
            }
        } else if let Some(&i) = self.index_of.get(&seq) {
            self.answers[i] = Some(answer);
        }
    }

    /// Every message answered, or the batch refused as a whole.
    pub(crate) fn complete(&self) -> bool {
        self.refused.is_some() || self.answers.iter().all(Option::is_some)
    }

    pub(crate) fn verdict(self, ops: &[Op]) -> Result<(), NftError> {
        let failed: Vec<(usize, &Refusal)> = self
            .answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                Some(Err(e)) => Some((i, e)),
                _ => None,
            })
            .collect();
        // The first failure is the cause; later ones usually follow from it
        // (a rule for a chain that failed to be created).
        if let Some(&(i, (errno, detail))) = failed.first() {
            return Err(NftError::Kernel {
                index: i + 1,
                what: ops.get(i).map(|o| o.what.clone()).unwrap_or_default(),
                errno: *errno,
                detail: detail.clone(),
                also_failed: failed.len() - 1,
            });
        }
        if let Some((errno, detail)) = self.refused {
            return Err(NftError::BatchRefused { errno, detail });
        }
        if let Some(i) = self.answers.iter().position(Option::is_none) {
            let what = ops.get(i).map(|o| o.what.as_str()).unwrap_or_default();
            return Err(NftError::Protocol(format!(
                "no ack for batch message {} ({what})",
                i + 1
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::nft::batch::{delete_table, encode};

    fn frame(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + body.len();
        let mut v = Vec::new();
        v.extend((len as u32).to_ne_bytes());
        v.extend(kind.to_ne_bytes());
        v.extend(flags.to_ne_bytes());
        v.extend(seq.to_ne_bytes());
        v.extend(4242u32.to_ne_bytes());
        v.extend(body);
        v.resize(align4(v.len()), 0);
        v
    }

    /// An NLMSG_ERROR as sent with NETLINK_CAP_ACK: code, the request's
    /// header, then the extended-ack TLVs.
    fn error(seq: u32, code: i32, msg: Option<&str>) -> Vec<u8> {
        let mut body = code.to_ne_bytes().to_vec();
        body.extend(frame(0x0a06, 0x0405, seq, &[])); // the request header
        let mut flags = NLM_F_CAPPED;
        if let Some(msg) = msg {
            flags |= NLM_F_ACK_TLVS;
            let mut tlv = ((4 + msg.len() + 1) as u16).to_ne_bytes().to_vec();
            tlv.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
            tlv.extend(msg.as_bytes());
            tlv.push(0);
            tlv.resize(align4(tlv.len()), 0);
            body.extend(tlv);
        }
        frame(NLMSG_ERROR, flags, seq, &body)
    }

    #[test]
    fn parses_acks_errors_and_ext_ack_text() {
        let mut dgram = error(5, 0, None);
        dgram.extend(frame(3, 0, 9, &[0; 4])); // NLMSG_DONE: skipped
        dgram.extend(error(6, -(Errno::EEXIST as i32), Some("Chain exists")));
        dgram.extend(error(7, -(Errno::EOPNOTSUPP as i32), None));
        assert_eq!(
            parse(&dgram).unwrap(),
            [
                Reply::Ack { seq: 5 },
                Reply::Error {
                    seq: 6,
                    errno: Errno::EEXIST,
                    detail: Some("Chain exists".into())
                },
                Reply::Error {
                    seq: 7,
                    errno: Errno::EOPNOTSUPP,
                    detail: None
                },
            ]
        );
    }

    #[test]
    fn rejects_garbled_frames() {
        let mut dgram = error(5, 0, None);
        dgram.truncate(dgram.len() - 4);
        assert!(parse(&dgram).is_err());
        assert!(parse(&[1, 2, 3]).is_err());
        let mut short = error(5, 0, None);
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(parse(&short).is_err());
    }

    fn three_ops() -> Vec<Op> {
        let mut ops = delete_table("skiff");
        ops.extend(delete_table("skiff"));
        ops.extend(delete_table("skiff"));
        for (i, op) in ops.iter_mut().enumerate() {
            op.what = format!("op{}", i + 1);
        }
        ops
    }

    #[test]
    fn first_failure_names_its_message() {
        let ops = three_ops();
        let enc = encode(&ops, 10);
        let mut t = Tally::new(&enc);
        t.feed(Reply::Ack { seq: 11 });
        assert!(!t.complete());
        for seq in [13, 12] {
            t.feed(Reply::Error {
                seq,
                errno: Errno::ENOENT,
                detail: None,
            });
        }
        assert!(t.complete());
        match t.verdict(&ops) {
            Err(NftError::Kernel {
                index,
                what,
                errno,
                also_failed,
                ..
            }) => {
                assert_eq!(
                    (index, what.as_str(), errno, also_failed),
                    (2, "op2", Errno::ENOENT, 1)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_on_batch_begin_refuses_everything() {
        let ops = three_ops();
        let enc = encode(&ops, 10);
        let mut t = Tally::new(&enc);
        t.feed(Reply::Error {
            seq: 10,
            errno: Errno::EPERM,
            detail: None,
        });
        assert!(t.complete());
        assert!(matches!(
            t.verdict(&ops),
            Err(NftError::BatchRefused {
                errno: Errno::EPERM,
                ..
            })
        ));
    }

    #[test]
    fn acks_everywhere_is_success_and_gaps_are_reported() {
        let ops = three_ops();
        let enc = encode(&ops, u32::MAX - 1); // sequence numbers wrap
        let mut t = Tally::new(&enc);
        for seq in &enc.seqs {
            t.feed(Reply::Ack { seq: *seq });
        }
        t.feed(Reply::Ack { seq: 12345 }); // not ours: ignored
        assert!(t.complete());
        t.verdict(&ops).unwrap();

        let mut t = Tally::new(&enc);
        t.feed(Reply::Ack { seq: enc.seqs[0] });
        match t.verdict(&ops) {
            Err(NftError::Protocol(msg)) => assert!(msg.contains("op2"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}
