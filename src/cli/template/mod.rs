//! Go's text/template, the subset docker's `--format`/`-f` flags use, over
//! JSON values (what `inspect` prints is what a template sees, as in
//! docker's raw fallback): fields (`.State.Status`, `$v.Name`), pipelines
//! (`{{.Id | printf "%.12s"}}`), variables, `if`/`else if`/`else`,
//! `range` (with `$i, $e :=`), `with`, comments, trim markers (`{{-`, `-}}`),
//! Go's built-in functions (`and or not len index print printf println eq
//! ne lt le gt ge`) and docker's (`json join split lower upper title pad
//! truncate`).
//!
//! Values print as Go's `%v` does: arrays as `[a b]`, objects as
//! `map[k:v]` with sorted keys, null as `<nil>`. A missing field is an error
//! naming it, as in docker's fallback; `index` of a missing key is empty.
//!
//! Why not a crate: gtmpl (the one Go-template crate) prints arrays and maps
//! in Rust's Debug form, errors on a missing `index` key and has no `%q`, so
//! every script that prints a list or reads an optional label would differ.
//!
//! ```text
//! parse.rs  lexer and parser: text → Vec<Node>
//! exec.rs   evaluation over serde_json::Value
//! funcs.rs  the functions and Go's value printing
//! ```

mod exec;
mod funcs;
mod parse;
#[cfg(test)]
mod tests;

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// Go's wording: `template: :1: unexpected "}" in operand`.
    #[error("template: :{line}: {msg}")]
    Parse { line: usize, msg: String },
    /// Go's wording: `template: :1:2: executing "" at <.Nope>: map has no
    /// entry for key "Nope"`.
    #[error("template: :{line}:{col}: executing \"\" at <{at}>: {msg}")]
    Exec {
        line: usize,
        col: usize,
        at: String,
        msg: String,
    },
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<parse::Node>,
    source: String,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            nodes: parse::parse(text)?,
            source: text.to_string(),
        })
    }

    /// The template's output for `data`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        exec::render(&self.nodes, &self.source, data)
    }
}

/// Docker's `--format` shorthands: `json` is `{{json .}}`; a format with
/// `table` in front keeps a header (handled by the caller), the rest is a
/// template.
pub fn format_template(format: &str) -> Result<Template, TemplateError> {
    if format == "json" {
        return Template::parse("{{json .}}");
    }
    // Docker reads `\t` and `\n` written literally in a format as the characters.
    Template::parse(&format.replace("\\t", "\t").replace("\\n", "\n"))
}
