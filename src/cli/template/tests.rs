//! Expected outputs are Go text/template's (go1.22, checked by hand against
//! docker 28's `inspect -f` where docker adds functions).

use serde_json::json;

use super::{format_template, Template, TemplateError};

fn data() -> serde_json::Value {
    json!({
        "Id": "0123456789abcdef",
        "Name": "/web",
        "State": {"Status": "running", "Running": true, "Pid": 42, "ExitCode": 0},
        "Config": {
            "Env": ["PATH=/bin", "A=1"],
            "Labels": {"tier": "web", "app": "x"},
            "Cmd": ["sh", "-c", "echo hi"],
            "Entrypoint": null,
            "Tty": false
        },
        "Mounts": [
            {"Type": "bind", "Source": "/s1", "Destination": "/d1"},
            {"Type": "volume", "Source": "/s2", "Destination": "/d2"}
        ],
        "NetworkSettings": {"IPAddress": "10.42.0.2", "Ports": {}},
        "Ratio": 0.5
    })
}

fn render(t: &str) -> Result<String, TemplateError> {
    Template::parse(t)?.render(&data())
}

fn ok(t: &str) -> String {
    render(t).unwrap_or_else(|e| panic!("{t}: {e}"))
}

#[test]
fn fields_and_printing() {
    assert_eq!(ok("{{.State.Status}}"), "running");
    assert_eq!(ok("{{.Id}}"), "0123456789abcdef");
    assert_eq!(ok("{{.NetworkSettings.IPAddress}}"), "10.42.0.2");
    assert_eq!(ok("{{.State.Pid}} {{.State.Running}}"), "42 true");
    assert_eq!(ok("{{.Config.Env}}"), "[PATH=/bin A=1]");
    assert_eq!(ok("{{.Config.Labels}}"), "map[app:x tier:web]");
    assert_eq!(ok("{{.Config.Entrypoint}}"), "<nil>");
    assert_eq!(ok("{{.Ratio}}"), "0.5");
    assert_eq!(ok("{{.NetworkSettings.Ports}}"), "map[]");
    assert_eq!(ok("a{{/* comment */}}b"), "ab");
    assert_eq!(ok("plain text"), "plain text");
    assert_eq!(ok(""), "");
}

#[test]
fn json_and_docker_functions() {
    assert_eq!(ok("{{json .Config.Labels}}"), r#"{"tier":"web","app":"x"}"#);
    assert_eq!(ok("{{json .State.Status}}"), r#""running""#);
    assert_eq!(ok("{{json .Config.Entrypoint}}"), "null");
    assert_eq!(ok("{{join .Config.Cmd \",\"}}"), "sh,-c,echo hi");
    assert_eq!(ok("{{upper .State.Status}}"), "RUNNING");
    assert_eq!(
        ok("{{lower \"ABC\"}} {{title \"hello world\"}}"),
        "abc Hello World"
    );
    assert_eq!(ok("{{split \"a:b:c\" \":\"}}"), "[a b c]");
    assert_eq!(ok("{{truncate .Id 12}}"), "0123456789ab");
    assert_eq!(ok("[{{pad .Name 1 2}}]"), "[ /web  ]");
    // <, > and & stay as they are (docker's encoder does not escape HTML).
    assert_eq!(
        Template::parse("{{json .}}")
            .unwrap()
            .render(&json!({"a": "<&>"}))
            .unwrap(),
        r#"{"a":"<&>"}"#
    );
}

#[test]
fn range_index_and_variables() {
    assert_eq!(
        ok("{{range .Mounts}}{{.Destination}}:{{.Type}} {{end}}"),
        "/d1:bind /d2:volume "
    );
    assert_eq!(
        ok("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}};{{end}}"),
        "0=/s1;1=/s2;"
    );
    assert_eq!(
        ok("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}"),
        "app=x,tier=web,"
    );
    assert_eq!(
        ok("{{range .Config.Entrypoint}}x{{else}}none{{end}}"),
        "none"
    );
    assert_eq!(
        ok("{{range $e := .Config.Env}}<{{$e}}>{{end}}"),
        "<PATH=/bin><A=1>"
    );
    assert_eq!(ok("{{index .Config.Labels \"tier\"}}"), "web");
    assert_eq!(ok("[{{index .Config.Labels \"missing\"}}]"), "[]");
    assert_eq!(ok("{{index .Config.Cmd 2}}"), "echo hi");
    assert_eq!(ok("{{(index .Mounts 1).Source}}"), "/s2");
    assert_eq!(ok("{{$n := .Name}}{{$n}}"), "/web");
    assert_eq!(ok("{{$x := 1}}{{$x = 2}}{{$x}}"), "2");
    // `$` is the data the template started with, also inside range.
    assert_eq!(ok("{{range .Mounts}}{{$.Name}}{{end}}"), "/web/web");
    assert_eq!(ok("{{len .Mounts}} {{len .Id}}"), "2 16");
}

#[test]
fn conditions_and_comparisons() {
    assert_eq!(ok("{{if .State.Running}}up{{else}}down{{end}}"), "up");
    assert_eq!(ok("{{if .Config.Tty}}tty{{else}}no tty{{end}}"), "no tty");
    assert_eq!(
        ok("{{if eq .State.Status \"exited\"}}e{{else if eq .State.Status \"running\"}}r{{else}}?{{end}}"),
        "r"
    );
    assert_eq!(
        ok("{{if eq .State.Status \"a\" \"b\" \"running\"}}yes{{end}}"),
        "yes"
    );
    assert_eq!(
        ok("{{if ne .State.ExitCode 0}}bad{{else}}good{{end}}"),
        "good"
    );
    assert_eq!(ok("{{if gt .State.Pid 1}}gt{{end}}"), "gt");
    assert_eq!(
        ok("{{if and .State.Running (not .Config.Tty)}}ok{{end}}"),
        "ok"
    );
    assert_eq!(
        ok("{{or .Config.Entrypoint .Config.Cmd}}"),
        "[sh -c echo hi]"
    );
    assert_eq!(
        ok("{{with .NetworkSettings}}{{.IPAddress}}{{end}}"),
        "10.42.0.2"
    );
    assert_eq!(
        ok("{{with .Config.Entrypoint}}x{{else}}none{{end}}"),
        "none"
    );
    assert!(render("{{if lt .Id 3}}x{{end}}").is_err());
}

#[test]
fn pipelines_and_printf() {
    assert_eq!(ok("{{.Id | printf \"%.12s\"}}"), "0123456789ab");
    assert_eq!(ok("{{printf \"%s-%d\" .Name .State.Pid}}"), "/web-42");
    assert_eq!(ok("{{printf \"%q\" .State.Status}}"), "\"running\"");
    assert_eq!(
        ok("{{printf \"%-8s|%5d|%05d\" \"ab\" 42 42}}"),
        "ab      |   42|00042"
    );
    assert_eq!(
        ok("{{printf \"%v %t %%\" .Config.Env true}}"),
        "[PATH=/bin A=1] true %"
    );
    assert_eq!(ok("{{printf \"%d\" \"x\"}}"), "%!d(string=x)");
    assert_eq!(ok("{{print \"a\" 1 2 \"b\"}}"), "a1 2b");
    assert_eq!(ok("{{println .Name .State.Pid}}"), "/web 42\n");
    assert_eq!(
        ok("{{.State.Status | upper | printf \"<%s>\"}}"),
        "<RUNNING>"
    );
}

#[test]
fn trim_markers() {
    assert_eq!(ok("a  {{- .Name -}}  \n b"), "a/webb");
    assert_eq!(
        ok("{{range .Mounts -}}\n  {{.Type}}\n{{- end}}"),
        "bindvolume"
    );
    assert_eq!(ok("x {{- /* c */ -}} y"), "xy");
    // Without the space it is a number, not a trim marker.
    assert_eq!(ok("{{-3}}"), "-3");
}

#[test]
fn errors_as_go_words_them() {
    assert_eq!(
        render("{{.Nope}}").unwrap_err().to_string(),
        "template: :1:2: executing \"\" at <.Nope>: map has no entry for key \"Nope\""
    );
    assert_eq!(
        render("x\n {{.State.Nope}}").unwrap_err().to_string(),
        "template: :2:3: executing \"\" at <.State.Nope>: map has no entry for key \"Nope\""
    );
    assert!(render("{{.Id.X}}")
        .unwrap_err()
        .to_string()
        .contains("can't evaluate field X in type string"));
    assert!(render("{{nosuch .Id}}")
        .unwrap_err()
        .to_string()
        .contains("function \"nosuch\" not defined"));
    assert!(render("{{$u}}")
        .unwrap_err()
        .to_string()
        .contains("undefined variable: $u"));
    assert!(render("{{index .Config.Cmd 9}}")
        .unwrap_err()
        .to_string()
        .contains("index out of range: 9"));
    for bad in [
        "{{.Id",
        "{{if .Id}}x",
        "{{end}}",
        "{{else}}",
        "{{\"open}}",
        "{{(.Id}}",
        "{{.Id | }}",
        "{{}}",
        "{{/* open }}",
        "{{define \"x\"}}{{end}}",
        "{{.Id ~}}",
    ] {
        assert!(
            matches!(Template::parse(bad), Err(TemplateError::Parse { .. })),
            "{bad} parsed"
        );
    }
}

#[test]
fn format_shorthands() {
    let t = format_template("json").unwrap();
    assert_eq!(t.render(&json!({"a": 1})).unwrap(), r#"{"a":1}"#);
    let t = format_template("{{.Id}}\\t{{.Name}}").unwrap();
    assert_eq!(t.render(&data()).unwrap(), "0123456789abcdef\t/web");
}

proptest::proptest! {
    /// Any text without `{{` is printed as it is; any input at all parses
    /// or fails without panicking, and renders or fails without panicking.
    #[test]
    fn hostile_input_never_panics(s in "\\PC{0,40}") {
        if !s.contains("{{") {
            proptest::prop_assert_eq!(render(&s).unwrap(), s.clone());
        }
        if let Ok(t) = Template::parse(&s) {
            let _ = t.render(&data());
        }
    }

    #[test]
    fn action_soup_never_panics(parts in proptest::collection::vec(
        proptest::sample::select(vec![
            "{{", "}}", "{{-", "-}}", " ", ".", ".Id", "$", "$x", ":=", "=", "|", "(", ")",
            "\"s\"", "`r`", "1", "-2", "if", "else", "end", "range", "with", "index",
            "printf", "json", ",", "/*", "*/", "\n",
        ]),
        0..16,
    )) {
        let s: String = parts.concat();
        if let Ok(t) = Template::parse(&s) {
            let _ = t.render(&data());
        }
    }
}

#[test]
fn slice_as_go() {
    assert_eq!(ok("{{slice .Id 0 4}}"), "0123");
    assert_eq!(ok("{{slice .Id 12}}"), "cdef");
    assert_eq!(ok("{{slice .Config.Cmd 1 2}}"), "[-c]");
    assert_eq!(ok("{{slice .Config.Cmd}}"), "[sh -c echo hi]");
    assert!(render("{{slice .Id 3 2}}")
        .unwrap_err()
        .to_string()
        .contains("invalid slice index: 3 > 2"));
    assert!(render("{{slice .Id 99}}")
        .unwrap_err()
        .to_string()
        .contains("index out of range: 99"));
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{{{{{}1{}}}}}", "(".repeat(5000), ")".repeat(5000));
    assert!(render(&deep)
        .unwrap_err()
        .to_string()
        .contains("max expression depth exceeded"));
    let blocks = "{{if 1}}".repeat(5000);
    assert!(render(&blocks)
        .unwrap_err()
        .to_string()
        .contains("max expression depth exceeded"));
}
