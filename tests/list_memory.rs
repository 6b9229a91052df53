//! Lists are written out object by object as they are read from the store
//! in chunks (so a big list never holds every object decoded at once):
//! lists of a namespace with many more objects than one chunk, read by
//! several clients at once, whole, in pages, filtered and as Tables, must
//! still be complete, correct and consistent. The memory figure itself is
//! measured by bench/list-memory.sh.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;

use serde_json::{json, Value};
use support::{json, stderr, stdout, Server};

const NS: &str = "many";
/// Several times the server's scan chunk (256 rows).
const COUNT: usize = 700;

fn name(i: usize) -> String {
    format!("cm-{i:04}")
}

/// Sizes vary so that chunk boundaries fall at different byte offsets;
/// every third object carries `tier=odd` for the filtered lists.
fn configmap(i: usize) -> Value {
    let mut labels = json!({"n": i.to_string()});
    if i % 3 == 0 {
        labels["tier"] = json!("odd");
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name(i), "namespace": NS, "labels": labels},
        "data": {"index": i.to_string(), "payload": "é-x".repeat(50 + (i * 37) % 900)},
    })
}

fn seed(s: &Server) {
    s.namespace(NS);
    let items: Vec<Value> = (0..COUNT).map(configmap).collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let file = s.write_file("many.json", &list.to_string());
    let out = s.kubectl(&["create", "--validate=false", "-f", &file]);
    assert!(out.status.success(), "create: {}", stderr(&out));
}

fn get(s: &Server, auth: &str, path: &str, accept: Option<&str>) -> Value {
    let url = s.url(path);
    let mut args = vec!["-H", auth, "-w", "\n%{http_code}"];
    let accept_header;
    if let Some(a) = accept {
        accept_header = format!("Accept: {a}");
        args.extend(["-H", accept_header.as_str()]);
    }
    args.push(&url);
    let out = s.curl(&args);
    let text = stdout(&out);
    let (body, code) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("GET {path}: no status: {text} {}", stderr(&out)));
    assert_eq!(code, "200", "GET {path}: {body}");
    json(body)
}

fn rv(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {}", v["metadata"]))
}

/// The ConfigMaps this test made, by name, checked against what was
/// created; others (kube-root-ca.crt) are left out.
fn check_items(items: &[Value], list_rv: i64) -> BTreeMap<String, i64> {
    let mut seen = BTreeMap::new();
    for item in items {
        let n = item["metadata"]["name"]
            .as_str()
            .expect("item without a name");
        assert!(rv(item) <= list_rv, "{n} is newer than its list");
        assert_eq!(item["metadata"]["namespace"], NS);
        let Some(i) = n.strip_prefix("cm-").and_then(|x| x.parse::<usize>().ok()) else {
            continue;
        };
        let want = configmap(i);
        assert_eq!(item["data"], want["data"], "{n}");
        assert_eq!(
            item["metadata"]["labels"], want["metadata"]["labels"],
            "{n}"
        );
        assert_eq!(item["kind"], "ConfigMap");
        assert!(seen.insert(n.to_string(), rv(item)).is_none(), "{n} twice");
    }
    seen
}

fn all_names() -> BTreeSet<String> {
    (0..COUNT).map(name).collect()
}

fn whole(s: &Server, auth: &str) {
    let list = get(
        s,
        auth,
        &format!("/api/v1/namespaces/{NS}/configmaps"),
        None,
    );
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(list["metadata"].get("continue").is_none());
    let items = list["items"].as_array().expect("items");
    let seen = check_items(items, rv(&list));
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), all_names());
}

fn paged(s: &Server, auth: &str, limit: usize, selector: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut cont = String::new();
    let mut first_rv = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/namespaces/{NS}/configmaps?limit={limit}{selector}");
        if !cont.is_empty() {
            path.push_str(&format!("&continue={cont}"));
        }
        let page = get(s, auth, &path, None);
        let items = page["items"].as_array().expect("items");
        assert!(
            items.len() <= limit,
            "{} items for limit {limit}",
            items.len()
        );
        let page_rv = rv(&page);
        // Every page of one list is read at the first page's revision.
        assert_eq!(*first_rv.get_or_insert(page_rv), page_rv);
        let seen = check_items(items, page_rv);
        for n in seen.into_keys() {
            assert!(names.insert(n.clone()), "{n} on two pages");
        }
        pages += 1;
        match page["metadata"]["continue"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), limit, "a short page with a continue token");
                if selector.is_empty() {
                    let left = page["metadata"]["remainingItemCount"]
                        .as_u64()
                        .expect("remainingItemCount");
                    assert!(left > 0);
                }
                cont = c.to_string();
            }
            None => break,
        }
        assert!(pages < 1000, "the pages never end");
    }
    names
}

fn table(s: &Server, auth: &str) {
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let t = get(
        s,
        auth,
        &format!("/api/v1/namespaces/{NS}/configmaps"),
        Some(accept),
    );
    assert_eq!(t["kind"], "Table");
    assert!(!t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .is_empty());
    let rows = t["rows"].as_array().expect("rows");
    let mut names = BTreeSet::new();
    for row in rows {
        let meta = &row["object"]["metadata"];
        let n = meta["name"].as_str().expect("row without a name");
        assert_eq!(row["cells"][0], n, "first cell is the name");
        if n.starts_with("cm-") {
            names.insert(n.to_string());
        }
    }
    assert_eq!(names, all_names());
}

#[test]
fn big_lists_read_concurrently_are_complete_and_consistent() {
    let s = Server::start();
    seed(&s);
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let odd: BTreeSet<String> = (0..COUNT).filter(|i| i % 3 == 0).map(name).collect();
    thread::scope(|sc| {
        let mut jobs = Vec::new();
        for round in 0..2 {
            let (s, auth, odd) = (&s, auth.as_str(), &odd);
            jobs.push(sc.spawn(move || whole(s, auth)));
            jobs.push(sc.spawn(move || whole(s, auth)));
            jobs.push(sc.spawn(move || table(s, auth)));
            jobs.push(sc.spawn(move || {
                // Pages larger and smaller than one chunk.
                let limit = if round == 0 { 300 } else { 97 };
                assert_eq!(paged(s, auth, limit, ""), all_names());
            }));
            jobs.push(sc.spawn(move || {
                let got = paged(s, auth, 40, "&labelSelector=tier%3Dodd");
                assert_eq!(&got, odd);
            }));
        }
        for j in jobs {
            if let Err(e) = j.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
    // kubectl reads the same lists (as Tables) and agrees.
    let out = s.kubectl_ok(&["get", "cm", "-n", NS, "-l", "tier=odd", "-o", "name"]);
    assert_eq!(out.lines().count(), odd.len(), "{out}");
}

/// Pages stop at a byte bound, not only at `limit`: a page of 500 objects
/// near the 1.5 MiB object limit would be 750 MB. A client following the
/// continue tokens (as kubectl does) still gets every object once, the
/// whole list still comes in one response, and deletecollection sends
/// back every object it deleted.
#[test]
fn pages_of_big_objects_end_at_a_byte_bound() {
    const BIG: usize = 14;
    let s = Server::start();
    s.namespace("big");
    let auth = format!("Authorization: Bearer {}", s.admin_token());
    let payload = "b".repeat(1_000_000);
    for i in 0..BIG {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("big-{i:02}"), "labels": {"big": "yes"}},
            "data": {"payload": payload},
        });
        let file = s.write_file("big.json", &cm.to_string());
        let url = s.url("/api/v1/namespaces/big/configmaps");
        let body = format!("@{file}");
        let out = s.curl(&[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            &body,
            &url,
        ]);
        assert_eq!(stdout(&out), "201", "create big-{i:02}: {}", stderr(&out));
    }
    let selector = "labelSelector=big%3Dyes";
    let mut names = BTreeSet::new();
    let mut cont = String::new();
    let mut pages = 0;
    loop {
        let mut path = "/api/v1/namespaces/big/configmaps?limit=500".to_string();
        if !cont.is_empty() {
            path.push_str(&format!("&continue={cont}"));
        }
        let page = get(&s, &auth, &path, None);
        let items = page["items"].as_array().expect("items");
        pages += 1;
        for item in items {
            if let Some(n) = item["metadata"]["name"]
                .as_str()
                .filter(|n| n.starts_with("big-"))
            {
                assert_eq!(
                    item["data"]["payload"].as_str().map(str::len),
                    Some(1_000_000)
                );
                assert!(names.insert(n.to_string()), "{n} on two pages");
            }
        }
        // 4 MiB of encoded items, and the one that crossed it.
        assert!(
            items.len() <= 5,
            "{} objects of 1 MB in one page",
            items.len()
        );
        match page["metadata"]["continue"].as_str() {
            Some(c) => {
                let left = page["metadata"]["remainingItemCount"]
                    .as_u64()
                    .expect("remainingItemCount");
                assert!(left > 0);
                cont = c.to_string();
            }
            None => break,
        }
        assert!(pages < 100, "the pages never end");
    }
    assert!(pages >= 2, "{BIG} objects of 1 MB came in one page");
    assert_eq!(names.len(), BIG);

    let whole = get(
        &s,
        &auth,
        &format!("/api/v1/namespaces/big/configmaps?{selector}"),
        None,
    );
    assert_eq!(whole["items"].as_array().map(Vec::len), Some(BIG));

    let url = s.url(&format!("/api/v1/namespaces/big/configmaps?{selector}"));
    let out = s.curl(&["-X", "DELETE", "-H", &auth, "-w", "\n%{http_code}", &url]);
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').expect("status");
    assert_eq!(
        code,
        "200",
        "deletecollection: {}",
        &body[..body.len().min(500)]
    );
    let deleted = json(body);
    assert_eq!(deleted["kind"], "ConfigMapList");
    let gone: BTreeSet<&str> = deleted["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(gone.len(), BIG);
    let after = get(
        &s,
        &auth,
        &format!("/api/v1/namespaces/big/configmaps?{selector}"),
        None,
    );
    assert_eq!(after["items"].as_array().map(Vec::len), Some(0));
}
