use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The fake server's replies in traces/kubectl/15-port-forward: two empty
/// SYN_REPLY blocks in one deflate context, which kubectl accepted.
const REPLY_1: &str = "80030002000000140000000178bbe3c6a7c202a6230600000000ffff";
const REPLY_3: &str = "800300020000000c00000003020100000000ffff";

#[test]
fn the_dictionary_is_spdy3s() {
    assert_eq!(DICTIONARY.len(), 1423);
    // zlib names a preset dictionary by its Adler-32 (the trace's 78bb e3c6a7c2).
    let (mut a, mut b) = (1u32, 0u32);
    for &x in DICTIONARY {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    assert_eq!((b << 16) | a, 0xe3c6_a7c2);
}

#[test]
fn header_blocks_match_the_trace_both_ways() {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&hex(&format!("{REPLY_1}{REPLY_3}"))[..]);
    for id in [1, 3] {
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Some(Frame::SynReply {
                stream_id: id,
                fin: false,
                headers: vec![]
            })
        );
    }
    assert!(buf.is_empty());
    let mut e = Encoder::default();
    let mut out = Vec::new();
    for id in [1, 3] {
        e.encode(
            &Frame::SynReply {
                stream_id: id,
                fin: false,
                headers: vec![],
            },
            &mut out,
        )
        .unwrap();
    }
    // The deflate bytes are the compressor's choice (zlib-rs codes the four
    // zero bytes as literals where C zlib matched the dictionary); what
    // kubectl needs is the same zlib header and dictionary ID, the same
    // frame heads, and blocks that inflate to the same headers.
    assert_eq!(out[..18], hex(REPLY_1)[..18]);
    let second = out.len() - hex(REPLY_3).len();
    assert_eq!(
        out[second..],
        hex(REPLY_3)[..],
        "a sync-flushed continuation"
    );
    let mut buf = BytesMut::from(&out[..]);
    let mut d = Decoder::default();
    for id in [1, 3] {
        assert!(matches!(d.decode(&mut buf).unwrap(),
            Some(Frame::SynReply { stream_id, headers, .. }) if stream_id == id && headers.is_empty()));
    }
}

#[test]
fn frames_round_trip_in_one_context_per_direction() {
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            fin: false,
            headers: h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new(),
        },
        Frame::SynStream {
            stream_id: 3,
            fin: false,
            headers: h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::Data {
            stream_id: 3,
            fin: false,
            data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
        },
        Frame::SynReply {
            stream_id: 3,
            fin: true,
            headers: h(&[("x", "y")]),
        },
        Frame::RstStream {
            stream_id: 3,
            status: CANCEL,
        },
        Frame::Ping { id: 7 },
        Frame::GoAway {
            last_stream_id: 3,
            status: 0,
        },
    ];
    let mut e = Encoder::default();
    let mut wire = Vec::new();
    for f in &frames {
        e.encode(f, &mut wire).unwrap();
    }
    // Fed a few bytes at a time, as the WebSocket tunnel delivers them.
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for chunk in wire.chunks(3) {
        buf.extend_from_slice(chunk);
        while let Some(f) = d.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    assert_eq!(
        header(&h(&[("port", "80")]), "port"),
        Some("80"),
        "lookup by name"
    );
}

#[test]
fn oversized_and_malformed_frames_are_refused() {
    let mut d = Decoder::default();
    // A DATA frame claiming 2 MiB: refused from its 8-byte head alone.
    let mut buf = BytesMut::from(&[0, 0, 0, 1, 0, 0x20, 0, 0][..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(SpdyError::TooLarge(0x20_0000))
    ));
    // SPDY/2.
    let mut buf = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
    assert!(matches!(d.decode(&mut buf), Err(SpdyError::Version(2))));
    // A PING without its id.
    let mut buf = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 0][..]);
    assert!(matches!(d.decode(&mut buf), Err(SpdyError::Malformed(_))));
    // A header block that is not zlib.
    let mut buf = BytesMut::from(&[0x80, 3, 0, 2, 0, 0, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4][..]);
    assert!(matches!(d.decode(&mut buf), Err(SpdyError::Headers(_))));
    // Too many headers, and a block that inflates past the bound.
    assert!(parse_headers(&1000u32.to_be_bytes()).is_err());
    assert!(parse_headers(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
    let mut e = Encoder::default();
    let mut wire = Vec::new();
    let big = "v".repeat(MAX_HEADER_BLOCK + 1);
    e.encode(
        &Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: h(&[("k", &big)]),
        },
        &mut wire,
    )
    .unwrap();
    let mut buf = BytesMut::from(&wire[..]);
    assert!(matches!(
        Decoder::default().decode(&mut buf),
        Err(SpdyError::Headers(_))
    ));
    // Nor is an oversized DATA frame ever written.
    let data = Bytes::from(vec![0; MAX_FRAME + 1]);
    assert!(e
        .encode(
            &Frame::Data {
                stream_id: 1,
                fin: false,
                data
            },
            &mut Vec::new()
        )
        .is_err());
}

#[test]
fn unknown_and_flow_control_frames_are_ignored() {
    let mut d = Decoder::default();
    // WINDOW_UPDATE and SETTINGS.
    let mut buf = BytesMut::from(&[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 1, 0][..]);
    assert_eq!(
        d.decode(&mut buf).unwrap(),
        Some(Frame::Ignored { kind: 9 })
    );
    let mut buf = BytesMut::from(&[0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 0][..]);
    assert_eq!(
        d.decode(&mut buf).unwrap(),
        Some(Frame::Ignored { kind: 4 })
    );
    let mut buf = BytesMut::from(&[0x80, 3, 0, 4, 0, 0][..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None, "incomplete: wait");
}

/// kubectl 1.32's first SYN_STREAM of a port-forward to port 8080, as its
/// `-v=7` log showed it writing (Go's compress/zlib: header 78f9).
const KUBECTL_SYN_STREAM: &str = "800300010000003e000000010000000000\
    0078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c60616061\
    c0c0c0c0590489c64c50f2663400000000ffff";

#[test]
fn kubectls_own_header_block_decodes() {
    let wire = hex(KUBECTL_SYN_STREAM);
    let mut buf = BytesMut::from(&wire[..]);
    let Some(Frame::SynStream {
        stream_id, headers, ..
    }) = Decoder::default().decode(&mut buf).unwrap()
    else {
        panic!("not a SYN_STREAM");
    };
    assert_eq!(stream_id, 1);
    assert_eq!(header(&headers, "streamtype"), Some("error"));
    assert_eq!(header(&headers, "port"), Some("8080"));
    assert_eq!(header(&headers, "requestid"), Some("0"));
    assert!(buf.is_empty());
}
