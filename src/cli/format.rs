//! `--format` for listings (`ps`, `images`), as docker reads it: `table`
//! (the default columns), `table TEMPLATE` (a header row, then a row per
//! item, cells split at tabs and aligned), `json` (one JSON object per
//! line), or a bare TEMPLATE (one line per item, no header). Each item is a
//! JSON object of strings under docker's field names (`.ID`, `.Names`,
//! `.Status`, …); the header of a `table` column is docker's name for the
//! field (`CONTAINER ID` for `.ID`).

use serde_json::{Map, Value};

use super::template::{self, Template};

pub enum Format {
    /// The command's default table.
    Default,
    Json,
    Template {
        tmpl: Template,
        table: bool,
    },
}

impl Format {
    pub fn parse(format: Option<&str>) -> anyhow::Result<Format> {
        let Some(f) = format else {
            return Ok(Format::Default);
        };
        let f = f.trim_start();
        if f.is_empty() || f == "table" {
            return Ok(Format::Default);
        }
        if f == "json" {
            return Ok(Format::Json);
        }
        let (table, text) = match f.strip_prefix("table") {
            Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim_start()),
            _ => (false, f),
        };
        let tmpl = template::format_template(text)
            .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
        Ok(Format::Template { tmpl, table })
    }

    /// The listing text for `items` (not for `Default`, which the caller
    /// prints itself); `headers` maps field names to column titles.
    pub fn render(&self, items: &[Value], headers: &[(&str, &str)]) -> anyhow::Result<String> {
        let mut out = String::new();
        match self {
            Format::Default => {}
            Format::Json => {
                for item in items {
                    out.push_str(&serde_json::to_string(item)?);
                    out.push('\n');
                }
            }
            Format::Template { tmpl, table } => {
                let render = |v: &Value| {
                    tmpl.render(v)
                        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))
                };
                let mut lines = Vec::new();
                if *table {
                    let header: Map<String, Value> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                        .collect();
                    lines.push(render(&Value::Object(header))?);
                }
                for item in items {
                    lines.push(render(item)?);
                }
                out = if *table {
                    align(&lines)
                } else {
                    lines.iter().map(|l| format!("{l}\n")).collect()
                };
            }
        }
        Ok(out)
    }
}

/// Go's tabwriter as docker sets it up (padding 3): each tab-separated
/// cell padded to its column's width, the last cell as it is.
fn align(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(x) => *x = (*x).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] + 3 - c.chars().count();
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_json_and_bare_templates() {
        let items = [
            json!({"ID": "abc", "Names": "web"}),
            json!({"ID": "defghi", "Names": "db"}),
        ];
        let headers = [("ID", "CONTAINER ID"), ("Names", "NAMES")];
        let f = Format::parse(Some("table {{.ID}}\t{{.Names}}")).unwrap();
        assert_eq!(
            f.render(&items, &headers).unwrap(),
            "CONTAINER ID   NAMES\nabc            web\ndefghi         db\n"
        );
        let f = Format::parse(Some("{{.Names}}")).unwrap();
        assert_eq!(f.render(&items, &headers).unwrap(), "web\ndb\n");
        let f = Format::parse(Some("json")).unwrap();
        assert_eq!(
            f.render(&items[..1], &headers).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
        assert!(matches!(
            Format::parse(Some("table")).unwrap(),
            Format::Default
        ));
        assert!(matches!(Format::parse(None).unwrap(), Format::Default));
        assert!(Format::parse(Some("{{.ID")).is_err());
        // A field the header does not know is an error, as in docker.
        let f = Format::parse(Some("table {{.Nope}}")).unwrap();
        assert!(f.render(&items, &headers).is_err());
    }
}
