//! The generator of tests/api_fuzz.rs: hostile requests from a seeded RNG.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map, Value};

pub struct Req {
    pub method: &'static str,
    /// Percent-encoded path and query.
    pub path: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Bytes that need no percent-encoding in a path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn pick<'a, T: ?Sized>(rng: &mut StdRng, items: &[&'a T]) -> &'a T {
    items[rng.random_range(0..items.len())]
}

/// Pieces that hit the edges of names and keys: multibyte characters,
/// separators, lengths at the limits, empty parts.
const PIECES: &[&str] = &[
    "a",
    "web",
    "x-",
    "-",
    ".",
    "..",
    "_",
    "/",
    "a/b",
    "a/b/c",
    "k8s.io/",
    "%",
    "=",
    ",",
    " ",
    "\u{e9}",
    "\u{fc}/z",
    "\u{1F600}",
    "\u{2028}",
    "\0",
    "A",
    "9",
    "~",
    "\\",
    "\"",
    "{",
    "[",
];

fn text(rng: &mut StdRng) -> String {
    let mut s = String::new();
    for _ in 0..rng.random_range(0..5) {
        if rng.random_bool(0.15) {
            let n = pick(
                rng,
                &[&1usize, &52, &57, &58, &59, &62, &63, &64, &253, &254, &400],
            );
            s.push_str(&"a".repeat(*n));
        } else {
            s.push_str(pick(rng, PIECES));
        }
    }
    s
}

/// A prefix of 50 to 70 bytes with multibyte characters around byte 58.
fn generate_name(rng: &mut StdRng) -> String {
    let mut s = "g".repeat(rng.random_range(50..60));
    while s.len() < rng.random_range(55..72) {
        s.push(*pick(
            rng,
            &[&'\u{e9}', &'\u{1F600}', &'z', &'-', &'\u{800}'],
        ));
    }
    s
}

fn string_map(rng: &mut StdRng) -> Value {
    let mut m = Map::new();
    for _ in 0..rng.random_range(0..4) {
        let v = if rng.random_bool(0.1) {
            pick(rng, &[&json!(null), &json!(5), &json!([]), &json!({})]).clone()
        } else {
            json!(text(rng))
        };
        m.insert(text(rng), v);
    }
    Value::Object(m)
}

const KEYS: &[&str] = &[
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "generateName",
    "finalizers",
    "ownerReferences",
    "generation",
    "resourceVersion",
    "uid",
    "data",
    "spec",
    "status",
    "replicas",
    "selector",
    "matchLabels",
    "template",
    "containers",
    "image",
    "ports",
    "clusterIP",
    "type",
    "kind",
    "apiVersion",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$deleteFromPrimitiveList/finalizers",
    "items",
    "x",
];

fn value(rng: &mut StdRng, depth: u32) -> Value {
    let leaf = depth == 0 || rng.random_bool(0.4);
    if leaf {
        return match rng.random_range(0..8) {
            0 => Value::Null,
            1 => json!(rng.random_bool(0.5)),
            2 => json!(*pick(rng, &[&-1i64, &0, &1, &3, &i64::MAX, &i64::MIN])),
            3 => json!(1.5),
            4 => json!(pick(rng, &["delete", "replace", "merge", "bogus"])),
            _ => json!(text(rng)),
        };
    }
    if rng.random_bool(0.3) {
        Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| value(rng, depth - 1))
                .collect(),
        )
    } else {
        let mut m = Map::new();
        for _ in 0..rng.random_range(0..5) {
            let k = if rng.random_bool(0.8) {
                pick(rng, KEYS).to_string()
            } else {
                text(rng)
            };
            m.insert(k, value(rng, depth - 1));
        }
        Value::Object(m)
    }
}

fn metadata(rng: &mut StdRng) -> Value {
    let mut m = Map::new();
    match rng.random_range(0..4) {
        0 => {
            m.insert("generateName".into(), json!(generate_name(rng)));
        }
        1 => {
            m.insert("name".into(), json!(text(rng)));
        }
        _ => {
            m.insert(
                "name".into(),
                json!(format!("f{}", rng.random_range(0..50))),
            );
        }
    }
    if rng.random_bool(0.6) {
        m.insert("labels".into(), string_map(rng));
    }
    if rng.random_bool(0.4) {
        m.insert("annotations".into(), string_map(rng));
    }
    if rng.random_bool(0.2) {
        m.insert("finalizers".into(), json!([text(rng)]));
    }
    if rng.random_bool(0.1) {
        m.insert(pick(rng, KEYS).to_string(), value(rng, 2));
    }
    Value::Object(m)
}

struct Kind {
    prefix: &'static str,
    plural: &'static str,
    kind: &'static str,
    api_version: &'static str,
    /// An object that exists, to patch.
    target: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        prefix: "/api/v1/namespaces/default/",
        plural: "configmaps",
        kind: "ConfigMap",
        api_version: "v1",
        target: "target",
    },
    Kind {
        prefix: "/apis/apps/v1/namespaces/default/",
        plural: "deployments",
        kind: "Deployment",
        api_version: "apps/v1",
        target: "web",
    },
    Kind {
        prefix: "/api/v1/namespaces/default/",
        plural: "services",
        kind: "Service",
        api_version: "v1",
        target: "svc",
    },
    Kind {
        prefix: "/api/v1/namespaces/default/",
        plural: "secrets",
        kind: "Secret",
        api_version: "v1",
        target: "sec",
    },
    Kind {
        prefix: "/api/v1/",
        plural: "namespaces",
        kind: "Namespace",
        api_version: "v1",
        target: "default",
    },
];

fn object(rng: &mut StdRng, k: &Kind) -> Value {
    let mut o = Map::new();
    if rng.random_bool(0.8) {
        o.insert("apiVersion".into(), json!(k.api_version));
        o.insert("kind".into(), json!(k.kind));
    }
    o.insert("metadata".into(), metadata(rng));
    match k.plural {
        "configmaps" | "secrets" => {
            o.insert("data".into(), string_map(rng));
        }
        "deployments" => {
            o.insert(
                "spec".into(),
                json!({"selector": {"matchLabels": {"app": "f"}},
                       "template": {"metadata": {"labels": {"app": "f"}},
                                    "spec": {"containers": [{"name": "c", "image": text(rng)}]}}}),
            );
        }
        "services" => {
            o.insert("spec".into(), json!({"ports": [{"port": 80}]}));
        }
        _ => {}
    }
    if rng.random_bool(0.3) {
        o.insert(pick(rng, KEYS).to_string(), value(rng, 3));
    }
    Value::Object(o)
}

fn json_patch(rng: &mut StdRng) -> Value {
    const SEGMENTS: &[&str] = &[
        "metadata",
        "labels",
        "annotations",
        "data",
        "spec",
        "template",
        "containers",
        "0",
        "1",
        "-",
        "~0",
        "~1",
        "~",
        "\u{e9}",
        "99999999999999999999",
        "",
        "name",
        "finalizers",
    ];
    let ptr = |rng: &mut StdRng| {
        let mut p = String::new();
        for _ in 0..rng.random_range(0..4) {
            p.push('/');
            p.push_str(pick(rng, SEGMENTS));
        }
        p
    };
    let ops = (0..rng.random_range(1..7))
        .map(|_| {
            let op = pick(
                rng,
                &["add", "remove", "replace", "move", "copy", "test", "bogus"],
            );
            let mut o = json!({"op": op, "path": ptr(rng)});
            if rng.random_bool(0.7) {
                o["value"] = value(rng, 2);
            }
            if matches!(op, "move" | "copy") || rng.random_bool(0.1) {
                o["from"] = json!(ptr(rng));
            }
            o
        })
        .collect();
    Value::Array(ops)
}

/// kubectl's protobuf bodies (from the reference traces) to mutate.
const PROTOBUF_SEEDS: &[&str] = &[
    "6b3873000a0f0a0276311209436f6e6669674d6170121c0a120a02633112001a0022002a0032003800420012060a016b1201761a002200",
    "6b3873000a0c0a027631120653656372657412350a120a02733112001a0022002a00320038004200120e0a04706173731206733363723374120d0a0475736572120561646d696e1a001a002200",
];

fn protobuf(rng: &mut StdRng) -> Vec<u8> {
    let seed = pick(rng, PROTOBUF_SEEDS);
    let mut b: Vec<u8> = (0..seed.len() / 2)
        .filter_map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).ok())
        .collect();
    for _ in 0..rng.random_range(1..5) {
        let at = rng.random_range(0..b.len().max(1));
        match rng.random_range(0..5) {
            0 if at < b.len() => b[at] = rng.random(),
            1 => b.insert(at.min(b.len()), rng.random()),
            2 => b.truncate(at.max(4)),
            3 if at < b.len() => b[at] = *pick(rng, &[&0x7fu8, &0xff, &0x80, &0x0a, &0x12]),
            _ => {
                // A length prefix claiming far more than is there.
                b.insert(at.min(b.len()), 0xff);
                b.insert(at.min(b.len()), 0xff);
            }
        }
    }
    b
}

fn selector(rng: &mut StdRng, field: bool) -> String {
    const LABEL: &[&str] = &[
        "a", "b", "app", "=", "==", "!=", "!", "in", "notin", "(", ")", ",", " ", "x", "\u{e9}",
        "a/b", "-", ".", "1", "exists", ">", "<",
    ];
    const FIELD: &[&str] = &[
        "metadata.name",
        "metadata.namespace",
        "status.phase",
        "spec.nodeName",
        "=",
        "==",
        "!=",
        ",",
        "\\",
        "\u{e9}",
        "x",
        "type",
    ];
    let set = if field { FIELD } else { LABEL };
    (0..rng.random_range(0..7))
        .map(|_| pick(rng, set))
        .collect()
}

fn query(rng: &mut StdRng) -> String {
    let mut q: Vec<String> = Vec::new();
    if rng.random_bool(0.5) {
        q.push(format!("labelSelector={}", encode(&selector(rng, false))));
    }
    if rng.random_bool(0.4) {
        q.push(format!("fieldSelector={}", encode(&selector(rng, true))));
    }
    if rng.random_bool(0.2) {
        let v = pick(rng, &["-1", "0", "1", "99999999999999999999", "x", ""]);
        q.push(format!("limit={v}"));
    }
    if rng.random_bool(0.1) {
        q.push(format!("continue={}", encode(&text(rng))));
    }
    if rng.random_bool(0.1) {
        let v = pick(rng, &["0", "1", "-1", "x", "99999999999"]);
        q.push(format!("resourceVersion={v}"));
    }
    q.join("&")
}

/// One request of a random kind.
pub fn request(rng: &mut StdRng) -> Req {
    let k = &KINDS[rng.random_range(0..KINDS.len())];
    let coll = format!("{}{}", k.prefix, k.plural);
    let named = |rng: &mut StdRng| {
        let name = if rng.random_bool(0.7) {
            k.target.to_string()
        } else {
            text(rng)
        };
        let sub = pick(rng, &["", "", "", "", "/status", "/scale"]);
        format!("{coll}/{}{sub}", encode(&name))
    };
    match rng.random_range(0..12) {
        0..=2 => {
            let dry = if rng.random_bool(0.5) {
                "?dryRun=All"
            } else {
                ""
            };
            Req {
                method: "POST",
                path: format!("{coll}{dry}"),
                content_type: "application/json",
                body: object(rng, k).to_string().into_bytes(),
            }
        }
        3 => Req {
            method: "POST",
            path: format!("{}configmaps?dryRun=All", KINDS[0].prefix),
            content_type: "application/vnd.kubernetes.protobuf",
            body: protobuf(rng),
        },
        4 | 5 => Req {
            method: "GET",
            path: format!("{coll}?{}", query(rng)),
            content_type: "application/json",
            body: Vec::new(),
        },
        6 => Req {
            method: "GET",
            path: named(rng),
            content_type: "application/json",
            body: Vec::new(),
        },
        7 => Req {
            method: "PATCH",
            path: named(rng),
            content_type: "application/merge-patch+json",
            body: value(rng, 4).to_string().into_bytes(),
        },
        8 => {
            let mut doc = value(rng, 4);
            if rng.random_bool(0.3) {
                doc = json!({"$patch": pick(rng, &["delete", "replace", "merge", "x"]),
                             "metadata": metadata(rng)});
            }
            Req {
                method: "PATCH",
                path: named(rng),
                content_type: "application/strategic-merge-patch+json",
                body: doc.to_string().into_bytes(),
            }
        }
        9 => Req {
            method: "PATCH",
            path: named(rng),
            content_type: "application/json-patch+json",
            body: json_patch(rng).to_string().into_bytes(),
        },
        10 => {
            // JSON is YAML; also YAML's own hazards (aliases, tags).
            let body = match rng.random_range(0..4) {
                0 => "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n"
                    .to_string(),
                1 => format!("metadata: !!binary {}\n", text(rng)),
                _ => object(rng, k).to_string(),
            };
            Req {
                method: "PATCH",
                path: format!("{}?fieldManager={}", named(rng), encode(&text(rng))),
                content_type: "application/apply-patch+yaml",
                body: body.into_bytes(),
            }
        }
        _ => Req {
            method: "DELETE",
            path: format!("{coll}/{}?dryRun=All", encode(&text(rng))),
            content_type: "application/json",
            body: Vec::new(),
        },
    }
}
