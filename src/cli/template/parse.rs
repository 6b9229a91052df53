//! Lexer and parser: the template's text → a tree of nodes. Actions are
//! tokenised on their own (a string inside one may hold `}}`); text around
//! trim markers loses its white space as in Go.

use super::TemplateError;

/// An operand: something that yields a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.A.B` (empty: `.` itself).
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the data the template started with).
    Var(String, Vec<String>),
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Nil,
    /// A function name; with arguments after it, a call.
    Func(String),
    /// `(pipeline).A.B`.
    Sub(Box<Pipeline>, Vec<String>),
}

/// One `|`-separated stage: a function call or a single operand.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub args: Vec<Arg>,
    /// Byte offset, for error positions.
    pub pos: usize,
    /// The command's text, for errors (`at <.Nope>`).
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Variables declared (`$x :=`, `$i, $e :=`) or assigned (`$x =`).
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Print(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Fields(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Num(serde_json::Number),
    LParen,
    /// `)` and the field chain right after it.
    RParen(Vec<String>),
    Pipe,
    Comma,
    Declare,
    Assign,
}

fn line_of(src: &str, pos: usize) -> usize {
    src[..pos.min(src.len())].matches('\n').count() + 1
}

fn err(src: &str, pos: usize, msg: impl Into<String>) -> TemplateError {
    TemplateError::Parse {
        line: line_of(src, pos),
        msg: msg.into(),
    }
}

/// A `.A.B` chain starting at `s[i]` == '.': the names and the end.
fn field_chain(s: &[u8], mut i: usize) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    while i < s.len() && s[i] == b'.' {
        let start = i + 1;
        let mut j = start;
        while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
            j += 1;
        }
        if j == start {
            // `.` alone (only valid as the whole chain).
            if names.is_empty() {
                i = j;
            }
            break;
        }
        names.push(String::from_utf8_lossy(&s[start..j]).into_owned());
        i = j;
    }
    (names, i)
}

/// Tokens of one action, from `start` (just after `{{` and any trim
/// marker); returns them, their offsets, where the action ends (after
/// `}}`) and whether it ends with a trim marker.
#[allow(clippy::type_complexity)]
fn lex_action(src: &str, start: usize) -> Result<(Vec<(Tok, usize)>, usize, bool), TemplateError> {
    let s = src.as_bytes();
    let mut i = start;
    let mut toks = Vec::new();
    loop {
        while i < s.len() && s[i].is_ascii_whitespace() {
            // ` -}}`: a trim marker needs the space before it.
            if s[i..].starts_with(b" -}}") || s[i..].starts_with(b"\n-}}") {
                return Ok((toks, i + 4, true));
            }
            i += 1;
        }
        if i >= s.len() {
            return Err(err(src, start, "unclosed action"));
        }
        if s[i..].starts_with(b"}}") {
            return Ok((toks, i + 2, false));
        }
        let at = i;
        let c = s[i];
        let tok = match c {
            b'.' => {
                let (names, end) = field_chain(s, i);
                if end == i {
                    return Err(err(src, at, "unexpected . in operand"));
                }
                i = end;
                Tok::Fields(names)
            }
            b'$' => {
                let mut j = i + 1;
                while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                    j += 1;
                }
                let name = String::from_utf8_lossy(&s[i + 1..j]).into_owned();
                let (names, end) = if s.get(j) == Some(&b'.') {
                    field_chain(s, j)
                } else {
                    (Vec::new(), j)
                };
                i = end;
                Tok::Var(name, names)
            }
            b'"' => {
                let mut j = i + 1;
                let mut out = String::new();
                loop {
                    let Some(&b) = s.get(j) else {
                        return Err(err(src, at, "unterminated quoted string"));
                    };
                    match b {
                        b'"' => break,
                        b'\n' => return Err(err(src, at, "unterminated quoted string")),
                        b'\\' => {
                            let esc = s.get(j + 1).copied().unwrap_or(b'\\');
                            out.push(match esc {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'0' => '\0',
                                b'"' => '"',
                                b'\\' => '\\',
                                other => {
                                    return Err(err(
                                        src,
                                        at,
                                        format!(
                                            "invalid syntax: unknown escape \\{}",
                                            other as char
                                        ),
                                    ))
                                }
                            });
                            j += 2;
                        }
                        _ => {
                            // Whole UTF-8 characters.
                            let rest = &src[j..];
                            let ch = rest.chars().next().unwrap_or('\u{fffd}');
                            out.push(ch);
                            j += ch.len_utf8().max(1);
                        }
                    }
                }
                i = j + 1;
                Tok::Str(out)
            }
            b'`' => {
                let Some(len) = src[i + 1..].find('`') else {
                    return Err(err(src, at, "unterminated raw quoted string"));
                };
                let text = src[i + 1..i + 1 + len].to_string();
                i = i + len + 2;
                Tok::Str(text)
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                let (names, end) = if s.get(i + 1) == Some(&b'.') {
                    field_chain(s, i + 1)
                } else {
                    (Vec::new(), i + 1)
                };
                i = end;
                Tok::RParen(names)
            }
            b'|' => {
                i += 1;
                Tok::Pipe
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b':' if s.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Declare
            }
            b'=' => {
                i += 1;
                Tok::Assign
            }
            b'-' | b'+' | b'0'..=b'9' => {
                let mut j = i + 1;
                while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'.') {
                    j += 1;
                }
                let text = &src[i..j];
                let num = text
                    .parse::<i64>()
                    .ok()
                    .map(serde_json::Number::from)
                    .or_else(|| {
                        text.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                    })
                    .ok_or_else(|| err(src, at, format!("bad number syntax: {text:?}")))?;
                i = j;
                Tok::Num(num)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                    j += 1;
                }
                let word = src[i..j].to_string();
                i = j;
                Tok::Ident(word)
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(src, at, format!("unexpected {ch:?} in command")));
            }
        };
        toks.push((tok, at));
    }
}

/// Where a block is in the making: its kind, pipeline and the nodes of
/// its branches.
struct Frame {
    kind: &'static str,
    pipe: Option<Pipeline>,
    then: Vec<Node>,
    els: Option<Vec<Node>>,
    /// `else if`: this frame closes with its parent's `end`.
    chained: bool,
}

impl Frame {
    fn nodes(&mut self) -> &mut Vec<Node> {
        match &mut self.els {
            Some(e) => e,
            None => &mut self.then,
        }
    }

    fn into_node(self) -> Node {
        let pipe = self.pipe.unwrap_or(Pipeline {
            decl: Vec::new(),
            assign: false,
            cmds: Vec::new(),
        });
        let els = self.els.unwrap_or_default();
        match self.kind {
            "range" => Node::Range(pipe, self.then, els),
            "with" => Node::With(pipe, self.then, els),
            _ => Node::If(pipe, self.then, els),
        }
    }
}

pub fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let mut stack = vec![Frame {
        kind: "",
        pipe: None,
        then: Vec::new(),
        els: None,
        chained: false,
    }];
    let mut pos = 0;
    let mut trim_next = false;
    while pos < src.len() {
        let open = src[pos..].find("{{").map(|o| pos + o);
        let text_end = open.unwrap_or(src.len());
        let mut text = &src[pos..text_end];
        if trim_next {
            text = text.trim_start();
        }
        let left_trim = open.is_some_and(|o| {
            let rest = &src.as_bytes()[o + 2..];
            rest.first() == Some(&b'-') && rest.get(1).is_some_and(|b| b.is_ascii_whitespace())
        });
        if left_trim {
            text = text.trim_end();
        }
        if !text.is_empty() {
            top(&mut stack).nodes().push(Node::Text(text.to_string()));
        }
        let Some(open) = open else { break };
        // After `{{` and a trim marker (`- `): a comment must start right there.
        let inner = open + 2 + if left_trim { 2 } else { 0 };
        if src[inner..].starts_with("/*") {
            let start = inner;
            let Some(close) = src[start..].find("*/") else {
                return Err(err(src, open, "unclosed comment"));
            };
            let mut end = start + close + 2;
            let rest = &src[end..];
            trim_next = false;
            if rest.starts_with(" -}}") {
                trim_next = true;
                end += 4;
            } else if rest.starts_with("}}") {
                end += 2;
            } else {
                return Err(err(src, open, "comment ends before closing delimiter"));
            }
            pos = end;
            continue;
        }
        let (toks, end, trim) = lex_action(src, inner)?;
        trim_next = trim;
        pos = end;
        action(src, open, toks, &mut stack)?;
    }
    if stack.len() > 1 {
        return Err(err(src, src.len(), "unexpected EOF"));
    }
    Ok(stack.pop().map(|f| f.then).unwrap_or_default())
}

fn top(stack: &mut [Frame]) -> &mut Frame {
    let n = stack.len() - 1;
    &mut stack[n]
}

fn action(
    src: &str,
    open: usize,
    toks: Vec<(Tok, usize)>,
    stack: &mut Vec<Frame>,
) -> Result<(), TemplateError> {
    let keyword = match toks.first() {
        Some((Tok::Ident(w), _)) => w.as_str(),
        None => return Err(err(src, open, "missing value for command")),
        _ => "",
    };
    match keyword {
        "if" | "range" | "with" if stack.len() > MAX_DEPTH => {
            return Err(err(src, open, TOO_DEEP));
        }
        "if" | "range" | "with" => {
            let kind = match keyword {
                "if" => "if",
                "range" => "range",
                _ => "with",
            };
            let pipe = Parser::new(src, &toks[1..]).pipeline(true)?;
            stack.push(Frame {
                kind,
                pipe: Some(pipe),
                then: Vec::new(),
                els: None,
                chained: false,
            });
        }
        "else" => {
            if stack.len() < 2 || top(stack).els.is_some() {
                return Err(err(src, open, "unexpected {{else}}"));
            }
            top(stack).els = Some(Vec::new());
            // `else if …` / `else with …`: a block inside the else branch
            // that the same `end` closes.
            if let Some((Tok::Ident(w), _)) = toks.get(1) {
                let kind = match w.as_str() {
                    "if" => "if",
                    "with" => "with",
                    _ => return Err(err(src, open, format!("unexpected {w:?} in else"))),
                };
                let pipe = Parser::new(src, &toks[2..]).pipeline(true)?;
                stack.push(Frame {
                    kind,
                    pipe: Some(pipe),
                    then: Vec::new(),
                    els: None,
                    chained: true,
                });
            } else if toks.len() > 1 {
                return Err(err(src, open, "unexpected token in else"));
            }
        }
        "end" => {
            if toks.len() > 1 {
                return Err(err(src, open, "unexpected token in end"));
            }
            loop {
                if stack.len() < 2 {
                    return Err(err(src, open, "unexpected {{end}}"));
                }
                let frame = stack
                    .pop()
                    .ok_or_else(|| err(src, open, "unexpected {{end}}"))?;
                let chained = frame.chained;
                let node = frame.into_node();
                top(stack).nodes().push(node);
                if !chained {
                    break;
                }
            }
        }
        "define" | "template" | "block" | "break" | "continue" => {
            return Err(err(
                src,
                open,
                format!("{{{{{keyword}}}}} is not supported in skiff's templates"),
            ));
        }
        _ => {
            let pipe = Parser::new(src, &toks).pipeline(false)?;
            top(stack).nodes().push(Node::Print(pipe));
        }
    }
    Ok(())
}

/// How deep parentheses and blocks may nest (real templates stay under
/// ten; Go's parser stops at 10000). Parsing, running and dropping a
/// template recurse once per level, so a hostile `--format` must not reach
/// the end of a thread's stack.
const MAX_DEPTH: usize = 100;
const TOO_DEEP: &str = "max expression depth exceeded";

struct Parser<'a> {
    src: &'a str,
    toks: &'a [(Tok, usize)],
    i: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, toks: &'a [(Tok, usize)]) -> Parser<'a> {
        Parser {
            src,
            toks,
            i: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map_or(0, |(_, p)| *p)
    }

    /// A whole pipeline up to the end of the tokens (`sub`: up to `)`).
    fn pipeline(&mut self, need: bool) -> Result<Pipeline, TemplateError> {
        let pipe = self.pipeline_inner()?;
        if self.i < self.toks.len() {
            return Err(err(self.src, self.pos(), "unexpected token in command"));
        }
        if need && pipe.cmds.is_empty() {
            return Err(err(self.src, self.pos(), "missing value for command"));
        }
        Ok(pipe)
    }

    fn pipeline_inner(&mut self) -> Result<Pipeline, TemplateError> {
        let mut decl = Vec::new();
        let mut assign = false;
        // `$x :=`, `$i, $e :=`, `$x =`.
        let save = self.i;
        let mut vars = Vec::new();
        while let Some(Tok::Var(name, fields)) = self.peek() {
            if !fields.is_empty() {
                break;
            }
            vars.push(name.clone());
            self.i += 1;
            if self.peek() == Some(&Tok::Comma) {
                self.i += 1;
                continue;
            }
            break;
        }
        match self.peek() {
            Some(Tok::Declare) if !vars.is_empty() && vars.len() <= 2 => {
                self.i += 1;
                decl = vars;
            }
            Some(Tok::Assign) if vars.len() == 1 => {
                self.i += 1;
                decl = vars;
                assign = true;
            }
            _ => self.i = save,
        }
        let mut cmds = Vec::new();
        loop {
            let start = self.i;
            let mut args = Vec::new();
            while let Some(t) = self.peek() {
                match t {
                    Tok::Pipe | Tok::RParen(_) => break,
                    _ => args.push(self.operand()?),
                }
            }
            if args.is_empty() {
                if self.peek() == Some(&Tok::Pipe) || !cmds.is_empty() {
                    return Err(err(self.src, self.pos(), "missing value for command"));
                }
                break;
            }
            let pos = self.toks.get(start).map_or(0, |(_, p)| *p);
            let end = self
                .toks
                .get(self.i)
                .map_or_else(|| self.src.len(), |(_, p)| *p);
            let text = self
                .src
                .get(pos..end)
                .unwrap_or_default()
                .trim()
                .trim_end_matches("}}")
                .trim_end_matches(" -")
                .trim()
                .to_string();
            cmds.push(Command { args, pos, text });
            if self.peek() == Some(&Tok::Pipe) {
                self.i += 1;
                continue;
            }
            break;
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    fn operand(&mut self) -> Result<Arg, TemplateError> {
        let Some((tok, at)) = self.toks.get(self.i).cloned() else {
            return Err(err(self.src, self.pos(), "missing value for command"));
        };
        self.i += 1;
        Ok(match tok {
            Tok::Fields(f) => Arg::Field(f),
            Tok::Var(n, f) => Arg::Var(n, f),
            Tok::Str(s) => Arg::Str(s),
            Tok::Num(n) => Arg::Num(n),
            Tok::Ident(w) => match w.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => Arg::Func(w),
            },
            Tok::LParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(err(self.src, at, TOO_DEEP));
                }
                let pipe = self.pipeline_inner()?;
                self.depth -= 1;
                match self.toks.get(self.i) {
                    Some((Tok::RParen(fields), _)) => {
                        self.i += 1;
                        if pipe.cmds.is_empty() {
                            return Err(err(
                                self.src,
                                at,
                                "missing value for parenthesized pipeline",
                            ));
                        }
                        Arg::Sub(Box::new(pipe), fields.clone())
                    }
                    _ => return Err(err(self.src, at, "unclosed left paren")),
                }
            }
            Tok::RParen(_) => return Err(err(self.src, at, "unexpected right paren")),
            Tok::Pipe | Tok::Comma | Tok::Declare | Tok::Assign => {
                return Err(err(self.src, at, "unexpected token in operand"))
            }
        })
    }
}
