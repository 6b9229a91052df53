//! Evaluating the parsed template over a JSON value: `.` is the current
//! value, `$` the data the template started with; variables live until the
//! `end` of the block that declared them, as in Go.

use serde_json::Value;

use super::funcs;
use super::parse::{Arg, Command, Node, Pipeline};
use super::TemplateError;

struct Exec<'a> {
    src: &'a str,
    /// `$` first, then the variables in scope, innermost last.
    vars: Vec<(String, Value)>,
}

pub fn render(nodes: &[Node], src: &str, data: &Value) -> Result<String, TemplateError> {
    let mut ex = Exec {
        src,
        vars: vec![(String::new(), data.clone())],
    };
    let mut out = String::new();
    ex.walk(nodes, data, &mut out)?;
    Ok(out)
}

/// An evaluation failure before it gets its position.
struct Fail(String);

impl Exec<'_> {
    fn error(&self, cmd: &Command, msg: String) -> TemplateError {
        let before = &self.src[..cmd.pos.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |n| n + 1);
        TemplateError::Exec {
            line,
            col,
            at: cmd.text.clone(),
            msg,
        }
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Print(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        out.push_str(&funcs::print_value(&v));
                    }
                }
                Node::If(p, then, els) | Node::With(p, then, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let is_with = matches!(node, Node::With(..));
                    if funcs::truth(&v) {
                        self.walk(then, if is_with { &v } else { dot }, out)?;
                    } else {
                        self.walk(els, dot, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, then, els) => self.range(p, then, els, dot, out)?,
            }
        }
        Ok(())
    }

    fn range(
        &mut self,
        p: &Pipeline,
        then: &[Node],
        els: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        // The declared variables are the loop's, not the pipeline's value.
        let value = self.commands(p, dot)?;
        let items: Vec<(Value, Value)> = match value {
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, e)| (Value::from(i), e))
                .collect(),
            // Go ranges over a map in key order.
            Value::Object(o) => {
                let mut kv: Vec<(String, Value)> = o.into_iter().collect();
                kv.sort_by(|a, b| a.0.cmp(&b.0));
                kv.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
            }
            Value::Null => Vec::new(),
            other => {
                let cmd = p.cmds.first().cloned().unwrap_or(Command {
                    args: Vec::new(),
                    pos: 0,
                    text: String::new(),
                });
                return Err(self.error(
                    &cmd,
                    format!("range can't iterate over {}", funcs::print_value(&other)),
                ));
            }
        };
        if items.is_empty() {
            return self.walk(els, dot, out);
        }
        let mark = self.vars.len();
        for (key, elem) in items {
            match p.decl.as_slice() {
                [e] => self.vars.push((e.clone(), elem.clone())),
                [k, e] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((e.clone(), elem.clone()));
                }
                _ => {}
            }
            self.walk(then, &elem, out)?;
            self.vars.truncate(mark);
        }
        Ok(())
    }

    /// A pipeline's value, declaring or assigning its variable.
    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let v = self.commands(p, dot)?;
        if let Some(name) = p.decl.first() {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => {
                        let cmd = p.cmds.first().cloned().unwrap_or(Command {
                            args: Vec::new(),
                            pos: 0,
                            text: String::new(),
                        });
                        return Err(self.error(&cmd, format!("undefined variable: ${name}")));
                    }
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    /// The value of the commands, each one's result the last argument of
    /// the next.
    fn commands(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            let v = self
                .command(cmd, dot, last.take())
                .map_err(|Fail(msg)| self.error(cmd, msg))?;
            last = Some(v);
        }
        Ok(last.unwrap_or(Value::Null))
    }

    fn command(&mut self, cmd: &Command, dot: &Value, piped: Option<Value>) -> Result<Value, Fail> {
        match cmd.args.first() {
            Some(Arg::Func(name)) => {
                let mut args = Vec::with_capacity(cmd.args.len());
                for a in &cmd.args[1..] {
                    args.push(self.arg(a, dot)?);
                }
                args.extend(piped);
                funcs::call(name, &args).map_err(Fail)
            }
            Some(first) => {
                if cmd.args.len() > 1 || piped.is_some() {
                    return Err(Fail(format!(
                        "can't give argument to non-function {}",
                        cmd.text
                    )));
                }
                self.arg(first, dot)
            }
            None => Ok(Value::Null),
        }
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, Fail> {
        match a {
            Arg::Field(names) => fields(dot, names),
            Arg::Var(name, names) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return Err(Fail(format!("undefined variable: ${name}")));
                };
                fields(&v.clone(), names)
            }
            Arg::Str(s) => Ok(Value::String(s.clone())),
            Arg::Num(n) => Ok(Value::Number(n.clone())),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Null),
            // A function as an argument is called without arguments.
            Arg::Func(name) => funcs::call(name, &[]).map_err(Fail),
            Arg::Sub(p, names) => {
                let mut v = Value::Null;
                let mut last = None;
                for cmd in &p.cmds {
                    v = self.command(cmd, dot, last.take())?;
                    last = Some(v.clone());
                }
                fields(&v, names)
            }
        }
    }
}

/// `.A.B` of `v`: a missing key is an error naming it (docker's fallback
/// runs templates with missingkey=error).
fn fields(v: &Value, names: &[String]) -> Result<Value, Fail> {
    let mut cur = v;
    for name in names {
        cur = match cur {
            Value::Object(o) => o
                .get(name)
                .ok_or_else(|| Fail(format!("map has no entry for key {name:?}")))?,
            Value::Null => {
                return Err(Fail(format!(
                    "nil pointer evaluating interface {{}}.{name}"
                )))
            }
            other => {
                return Err(Fail(format!(
                    "can't evaluate field {name} in type {}",
                    funcs::type_name(other)
                )))
            }
        };
    }
    Ok(cur.clone())
}
