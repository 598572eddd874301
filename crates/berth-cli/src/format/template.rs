//! The subset of Go's `text/template` that docker users write, with docker's extra
//! functions (`json`, `join`, `split`, `lower`, `upper`, `title`, `pad`, `truncate`).
//!
//! Why not the `gtmpl` crate: its values are `HashMap`s, so `{{json .State}}` could
//! not print keys in the daemon's (struct) order as docker does, and docker's
//! formatter contexts need methods with arguments (`{{.Label "com.x"}}`) and strict
//! structs (an unknown field is an error, not `<no value>`). This evaluator covers:
//! fields and chains (`.A.B`, `$x.A`, `(index .X 0).Y`), variables (`$x :=`, `$`),
//! pipelines, `if`/`else if`/`else`, `range` (with `$i, $e :=`), `with`, comments,
//! trim markers (`{{-`, `-}}`), string/number/bool/nil literals and the functions
//! `and or not len index slice print printf println eq ne lt le gt ge`.

use super::value::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

fn parse_err(line: usize, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError(format!("template: :{line}: {msg}"))
}

fn exec_err(line: usize, at: &str, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError(format!("template: :{line}: executing \"\" at <{at}>: {msg}"))
}

// ---- lexing ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `.A.B` (empty path = `.`); `adjacent` = no space before it (chains on `)`).
    Field(Vec<String>, bool),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

enum Segment {
    Text(String),
    Action(Vec<Tok>, usize),
}

fn segments(src: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut segs = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    while pos <= src.len() {
        let rest = &src[pos..];
        let Some(open) = rest.find("{{") else {
            let mut text = rest;
            if trim_next {
                text = text.trim_start();
            }
            if !text.is_empty() {
                segs.push(Segment::Text(text.to_string()));
            }
            break;
        };
        let line = 1 + src[..pos + open].matches('\n').count();
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner_start = pos + open + 2;
        let b = src.as_bytes();
        if b.get(inner_start) == Some(&b'-') && b.get(inner_start + 1).is_some_and(|c| c.is_ascii_whitespace()) {
            text = text.trim_end();
            inner_start += 2;
        }
        if !text.is_empty() {
            segs.push(Segment::Text(text.to_string()));
        }
        let close = find_close(src, inner_start).ok_or_else(|| parse_err(line, "unclosed action"))?;
        let mut inner_end = close;
        trim_next = false;
        let body = &src[inner_start..close];
        if body.len() >= 2 && body.ends_with('-') && body[..body.len() - 1].ends_with(char::is_whitespace) {
            inner_end = close - 2;
            trim_next = true;
        }
        let inner = src[inner_start..inner_end.max(inner_start)].trim();
        if inner.starts_with("/*") {
            if !inner.ends_with("*/") {
                return Err(parse_err(line, "unclosed comment"));
            }
        } else {
            segs.push(Segment::Action(lex(inner, line)?, line));
        }
        pos = close + 2;
    }
    Ok(segs)
}

/// Finds the `}}` closing an action, skipping quoted strings and comments.
fn find_close(src: &str, from: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..].find("*/")?;
                i += 2 + end + 1;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(s: &str, line: usize) -> Result<Vec<Tok>, TemplateError> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut spaced = true;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            spaced = true;
            i += 1;
            continue;
        }
        let adjacent = !spaced;
        spaced = false;
        match c {
            '.' if chars.get(i + 1).is_none_or(|n| !n.is_ascii_digit()) => {
                let (path, next) = lex_path(&chars, i);
                toks.push(Tok::Field(path, adjacent));
                i = next;
            }
            '$' => {
                let mut j = i + 1;
                while j < chars.len() && is_ident_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[i..j].iter().collect();
                let (path, next) = if chars.get(j) == Some(&'.') { lex_path(&chars, j) } else { (vec![], j) };
                toks.push(Tok::Var(name, path));
                i = next;
            }
            '"' => {
                let mut j = i + 1;
                let mut out = String::new();
                loop {
                    let Some(&ch) = chars.get(j) else {
                        return Err(parse_err(line, "unterminated quoted string"));
                    };
                    j += 1;
                    match ch {
                        '"' => break,
                        '\\' => {
                            let esc = chars.get(j).copied().ok_or_else(|| parse_err(line, "unterminated quoted string"))?;
                            j += 1;
                            match esc {
                                'n' => out.push('\n'),
                                't' => out.push('\t'),
                                'r' => out.push('\r'),
                                '\\' => out.push('\\'),
                                '"' => out.push('"'),
                                '\'' => out.push('\''),
                                '0' => out.push('\0'),
                                'x' | 'u' => {
                                    let n = if esc == 'x' { 2 } else { 4 };
                                    let hex: String = chars.iter().skip(j).take(n).collect();
                                    let v = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| parse_err(line, format!("invalid syntax: \\{esc}{hex}")))?;
                                    out.push(v);
                                    j += n;
                                }
                                other => return Err(parse_err(line, format!("unknown escape sequence: \\{other}"))),
                            }
                        }
                        ch => out.push(ch),
                    }
                }
                toks.push(Tok::Str(out));
                i = j;
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| parse_err(line, "unterminated raw quoted string"))?;
                toks.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i = i + 2 + end;
            }
            '\'' => {
                let ch = chars.get(i + 1).copied().ok_or_else(|| parse_err(line, "unterminated character constant"))?;
                if chars.get(i + 2) != Some(&'\'') {
                    return Err(parse_err(line, "unterminated character constant"));
                }
                toks.push(Tok::Num((ch as u32 as i64).into()));
                i += 3;
            }
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            c if c.is_ascii_digit() || ((c == '-' || c == '+' || c == '.') && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())) => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '.' || chars[j] == '_') {
                    j += 1;
                }
                let text: String = chars[i..j].iter().filter(|&&c| c != '_').collect();
                toks.push(Tok::Num(parse_number(&text).ok_or_else(|| parse_err(line, format!("bad number syntax: {text:?}")))?));
                i = j;
            }
            c if is_ident_char(c) => {
                let mut j = i;
                while j < chars.len() && is_ident_char(chars[j]) {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                toks.push(match word.as_str() {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(word),
                });
                i = j;
            }
            other => return Err(parse_err(line, format!("unexpected {other:?} in command"))),
        }
    }
    Ok(toks)
}

fn lex_path(chars: &[char], mut i: usize) -> (Vec<String>, usize) {
    let mut path = Vec::new();
    while chars.get(i) == Some(&'.') {
        let mut j = i + 1;
        while j < chars.len() && is_ident_char(chars[j]) {
            j += 1;
        }
        if j == i + 1 {
            // A bare `.`: the dot itself.
            i = j;
            break;
        }
        path.push(chars[i + 1..j].iter().collect());
        i = j;
    }
    (path, i)
}

fn parse_number(text: &str) -> Option<serde_json::Number> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(n.into());
    }
    let (neg, t) = text.strip_prefix('-').map(|t| (true, t)).unwrap_or((false, text.trim_start_matches('+')));
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        let v = i64::from_str_radix(h, 16).ok()?;
        return Some((if neg { -v } else { v }).into());
    }
    let f: f64 = text.parse().ok()?;
    serde_json::Number::from_f64(f)
}

// ---- parsing --------------------------------------------------------------------

const FUNCTIONS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt", "le", "gt", "ge",
    "json", "join", "split", "lower", "upper", "title", "pad", "truncate",
];

#[derive(Debug, Clone)]
enum Operand {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Command {
    operands: Vec<Operand>,
}

#[derive(Debug, Clone)]
struct Pipeline {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Command>,
    line: usize,
    text: String,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

enum Stop {
    Eof,
    End,
    Else(Vec<Tok>, usize),
}

struct Parser {
    segs: std::vec::IntoIter<Segment>,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(seg) = self.segs.next() {
            match seg {
                Segment::Text(t) => nodes.push(Node::Text(t)),
                Segment::Action(toks, line) => {
                    let keyword = match toks.first() {
                        Some(Tok::Ident(w)) => w.as_str(),
                        _ => "",
                    };
                    match keyword {
                        "end" => {
                            if toks.len() > 1 {
                                return Err(parse_err(line, "unexpected tokens after end"));
                            }
                            return Ok((nodes, Stop::End));
                        }
                        "else" => return Ok((nodes, Stop::Else(toks[1..].to_vec(), line))),
                        "if" | "range" | "with" => {
                            let kw = keyword.to_string();
                            nodes.push(self.control(&kw, toks[1..].to_vec(), line)?);
                        }
                        "define" | "template" | "block" | "break" | "continue" => {
                            return Err(parse_err(line, format!("{keyword} is not supported by berth's templates")));
                        }
                        _ => nodes.push(Node::Action(pipeline(toks, line)?)),
                    }
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(&mut self, kw: &str, toks: Vec<Tok>, line: usize) -> Result<Node, TemplateError> {
        let pipe = pipeline(toks, line)?;
        if pipe.cmds.is_empty() {
            return Err(parse_err(line, format!("missing value for {kw}")));
        }
        let (body, stop) = self.list()?;
        let els = match stop {
            Stop::Eof => return Err(parse_err(line, format!("unexpected EOF in {kw}"))),
            Stop::End => Vec::new(),
            Stop::Else(rest, eline) => {
                if rest.is_empty() {
                    let (els, stop) = self.list()?;
                    match stop {
                        Stop::End => els,
                        _ => return Err(parse_err(eline, format!("expected end; found else in {kw}"))),
                    }
                } else {
                    // `else if ...` / `else with ...`: a nested control sharing our `end`.
                    let nested_kw = match rest.first() {
                        Some(Tok::Ident(w)) if w == "if" || w == "with" => w.clone(),
                        _ => return Err(parse_err(eline, "unexpected tokens after else")),
                    };
                    vec![self.control(&nested_kw, rest[1..].to_vec(), eline)?]
                }
            }
        };
        Ok(match kw {
            "if" => Node::If(pipe, body, els),
            "range" => Node::Range(pipe, body, els),
            _ => Node::With(pipe, body, els),
        })
    }
}

fn tok_text(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        if !s.is_empty() {
            s.push(' ');
        }
        match t {
            Tok::Field(p, _) => {
                if p.is_empty() {
                    s.push('.');
                }
                for f in p {
                    s.push('.');
                    s.push_str(f);
                }
            }
            Tok::Var(n, p) => {
                s.push_str(n);
                for f in p {
                    s.push('.');
                    s.push_str(f);
                }
            }
            Tok::Ident(i) => s.push_str(i),
            Tok::Str(x) => s.push_str(&format!("{x:?}")),
            Tok::Num(n) => s.push_str(&n.to_string()),
            Tok::Bool(b) => s.push_str(&b.to_string()),
            Tok::Nil => s.push_str("nil"),
            Tok::Pipe => s.push('|'),
            Tok::LParen => s.push('('),
            Tok::RParen => s.push(')'),
            Tok::Declare => s.push_str(":="),
            Tok::Assign => s.push('='),
            Tok::Comma => s.push(','),
        }
    }
    s
}

fn pipeline(toks: Vec<Tok>, line: usize) -> Result<Pipeline, TemplateError> {
    let text = tok_text(&toks);
    let mut pos = 0;
    let p = parse_pipeline(&toks, &mut pos, line, text)?;
    if pos != toks.len() {
        return Err(parse_err(line, format!("unexpected {:?} in operand", toks[pos])));
    }
    Ok(p)
}

fn parse_pipeline(toks: &[Tok], pos: &mut usize, line: usize, text: String) -> Result<Pipeline, TemplateError> {
    let mut decl = Vec::new();
    let mut assign = false;
    // Look for `$a [, $b] :=` / `=` at the start.
    let mut look = *pos;
    let mut names = Vec::new();
    while let Some(Tok::Var(n, p)) = toks.get(look) {
        if !p.is_empty() {
            break;
        }
        names.push(n.clone());
        look += 1;
        match toks.get(look) {
            Some(Tok::Comma) => look += 1,
            Some(Tok::Declare) | Some(Tok::Assign) => {
                assign = matches!(toks[look], Tok::Assign);
                decl = std::mem::take(&mut names);
                *pos = look + 1;
                break;
            }
            _ => break,
        }
    }
    let mut cmds = Vec::new();
    loop {
        let mut operands = Vec::new();
        while let Some(t) = toks.get(*pos) {
            match t {
                Tok::Pipe | Tok::RParen => break,
                _ => operands.push(parse_operand(toks, pos, line)?),
            }
        }
        if operands.is_empty() {
            if !cmds.is_empty() || matches!(toks.get(*pos), Some(Tok::Pipe)) {
                return Err(parse_err(line, "missing command"));
            }
        } else {
            cmds.push(Command { operands });
        }
        match toks.get(*pos) {
            Some(Tok::Pipe) => *pos += 1,
            _ => break,
        }
    }
    if !decl.is_empty() && cmds.is_empty() {
        return Err(parse_err(line, "missing value for command"));
    }
    Ok(Pipeline { decl, assign, cmds, line, text })
}

fn parse_operand(toks: &[Tok], pos: &mut usize, line: usize) -> Result<Operand, TemplateError> {
    let t = toks[*pos].clone();
    *pos += 1;
    Ok(match t {
        Tok::Field(p, _) => Operand::Field(p),
        Tok::Var(n, p) => Operand::Var(n, p),
        Tok::Ident(i) => {
            if !FUNCTIONS.contains(&i.as_str()) {
                return Err(parse_err(line, format!("function {i:?} not defined")));
            }
            Operand::Ident(i)
        }
        Tok::Str(s) => Operand::Lit(Value::Str(s)),
        Tok::Num(n) => Operand::Lit(Value::Num(n)),
        Tok::Bool(b) => Operand::Lit(Value::Bool(b)),
        Tok::Nil => Operand::Lit(Value::Null),
        Tok::LParen => {
            let inner = parse_pipeline(toks, pos, line, String::new())?;
            if toks.get(*pos) != Some(&Tok::RParen) {
                return Err(parse_err(line, "unclosed left paren"));
            }
            *pos += 1;
            let mut chain = Vec::new();
            if let Some(Tok::Field(p, true)) = toks.get(*pos) {
                chain = p.clone();
                *pos += 1;
            }
            Operand::Sub(Box::new(inner), chain)
        }
        other => return Err(parse_err(line, format!("unexpected {other:?} in operand"))),
    })
}

// ---- execution --------------------------------------------------------------------

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut p = Parser { segs: segments(src)?.into_iter() };
        let (nodes, stop) = p.list()?;
        match stop {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => Err(parse_err(1, "unexpected {{end}}")),
            Stop::Else(_, line) => Err(parse_err(line, "unexpected {{else}}")),
        }
    }

    /// Renders the template with `data` as `.` and `$`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut st = State { vars: vec![("$".into(), data.clone())], out: String::new(), header: false };
        st.walk(&self.nodes, data)?;
        Ok(st.out)
    }

    /// Renders a table header: the data maps field names to column titles, and the
    /// transforming functions (json, lower, join...) pass their input through, as
    /// docker's `HeaderFunctions` do. Like docker, a failure keeps what was rendered.
    pub fn execute_header(&self, headers: &Value) -> String {
        let mut st = State { vars: vec![("$".into(), headers.clone())], out: String::new(), header: true };
        let _ = st.walk(&self.nodes, headers);
        st.out
    }
}

struct State {
    vars: Vec<(String, Value)>,
    out: String,
    header: bool,
}

impl State {
    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.display());
                    }
                }
                Node::If(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    if v.truthy() {
                        self.walk(body, dot)?;
                    } else {
                        self.walk(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    if v.truthy() {
                        self.walk(body, &v)?;
                    } else {
                        self.walk(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, els) => {
                    let mark = self.vars.len();
                    // The declared variables get the index/key and element, not the whole value.
                    let decl = p.decl.clone();
                    let plain = Pipeline { decl: vec![], ..p.clone() };
                    let v = self.pipeline(&plain, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::List(l) => l.iter().enumerate().map(|(i, x)| (Value::from(i as i64), x.clone())).collect(),
                        Value::Map(m) => {
                            let mut e: Vec<_> = m.entries.iter().filter(|(_, v)| !matches!(v, Value::Func(_))).collect();
                            e.sort_by(|a, b| a.0.cmp(&b.0));
                            e.into_iter().map(|(k, v)| (Value::from(k.as_str()), v.clone())).collect()
                        }
                        Value::Num(n) if n.as_i64().is_some() => {
                            (0..n.as_i64().unwrap_or(0)).map(|i| (Value::from(i), Value::from(i))).collect()
                        }
                        Value::Null | Value::Missing => vec![],
                        other => {
                            return Err(exec_err(p.line, &p.text, format!("range can't iterate over {}", other.display())));
                        }
                    };
                    if items.is_empty() {
                        self.walk(els, dot)?;
                    }
                    for (k, item) in items {
                        let inner = self.vars.len();
                        match decl.len() {
                            0 => {}
                            1 => self.vars.push((decl[0].clone(), item.clone())),
                            _ => {
                                self.vars.push((decl[0].clone(), k));
                                self.vars.push((decl[1].clone(), item.clone()));
                            }
                        }
                        self.walk(body, &item)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn lookup_var(&self, name: &str, p: &Pipeline) -> Result<Value, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| exec_err(p.line, name, format!("undefined variable: {name}")))
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut val: Option<Value> = None;
        for cmd in &p.cmds {
            val = Some(self.command(cmd, dot, val, p)?);
        }
        let v = val.unwrap_or(Value::Missing);
        if let Some(name) = p.decl.first() {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(exec_err(p.line, name, format!("undefined variable: {name}"))),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, cmd: &Command, dot: &Value, fin: Option<Value>, p: &Pipeline) -> Result<Value, TemplateError> {
        let first = &cmd.operands[0];
        let rest = &cmd.operands[1..];
        match first {
            Operand::Field(path) if !path.is_empty() => self.chain(dot.clone(), path, rest, fin, dot, p),
            Operand::Var(name, path) if !path.is_empty() => {
                let base = self.lookup_var(name, p)?;
                self.chain(base, path, rest, fin, dot, p)
            }
            Operand::Sub(inner, path) if !path.is_empty() => {
                let base = self.pipeline(inner, dot)?;
                self.chain(base, path, rest, fin, dot, p)
            }
            Operand::Ident(name) => {
                let mut args = Vec::with_capacity(rest.len() + 1);
                // `and`/`or` evaluate lazily in Go; evaluating all operands is equivalent
                // here since operands have no side effects.
                for o in rest {
                    args.push(self.arg(o, dot, p)?);
                }
                if let Some(f) = fin {
                    args.push(f);
                }
                self.call(name, &args, p)
            }
            _ => {
                if !rest.is_empty() || fin.is_some() {
                    return Err(exec_err(p.line, &p.text, "can't give argument to non-function"));
                }
                self.arg(first, dot, p)
            }
        }
    }

    fn arg(&mut self, o: &Operand, dot: &Value, p: &Pipeline) -> Result<Value, TemplateError> {
        match o {
            Operand::Field(path) => self.chain(dot.clone(), path, &[], None, dot, p),
            Operand::Var(name, path) => {
                let base = self.lookup_var(name, p)?;
                self.chain(base, path, &[], None, dot, p)
            }
            Operand::Ident(name) => self.call(name, &[], p),
            Operand::Lit(v) => Ok(v.clone()),
            Operand::Sub(inner, path) => {
                let base = self.pipeline(inner, dot)?;
                self.chain(base, path, &[], None, dot, p)
            }
        }
    }

    /// Walks `.A.B.C` from `base`; the last element may be a method taking arguments.
    fn chain(
        &mut self,
        base: Value,
        path: &[String],
        args: &[Operand],
        fin: Option<Value>,
        dot: &Value,
        p: &Pipeline,
    ) -> Result<Value, TemplateError> {
        let mut cur = base;
        for (i, name) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let next = match &cur {
                Value::Map(m) => match m.get(name) {
                    Some(v) => v.clone(),
                    None if m.strict => {
                        return Err(exec_err(p.line, &format!(".{}", path[..=i].join(".")), format!("can't evaluate field {name}")));
                    }
                    None => Value::Missing,
                },
                Value::Null | Value::Missing => Value::Missing,
                other => {
                    return Err(exec_err(
                        p.line,
                        &format!(".{}", path[..=i].join(".")),
                        format!("can't evaluate field {name} in type {}", go_type(other)),
                    ));
                }
            };
            cur = match next {
                Value::Func(f) => {
                    let mut a = Vec::new();
                    if last {
                        for o in args {
                            a.push(self.arg(o, dot, p)?);
                        }
                        if let Some(v) = fin.clone() {
                            a.push(v);
                        }
                    }
                    f(&a).map_err(|e| exec_err(p.line, &format!(".{}", path[..=i].join(".")), e))?
                }
                v => {
                    if last && (!args.is_empty() || fin.is_some()) {
                        if let Value::Map(_) = cur {
                            return Err(exec_err(p.line, &p.text, format!("{name} is not a method but has arguments")));
                        }
                        return Err(exec_err(p.line, &p.text, format!("{name} has arguments but cannot be invoked as function")));
                    }
                    v
                }
            };
        }
        if path.is_empty() && (!args.is_empty() || fin.is_some()) {
            return Err(exec_err(p.line, &p.text, "can't give argument to non-function"));
        }
        Ok(cur)
    }

    fn call(&mut self, name: &str, args: &[Value], p: &Pipeline) -> Result<Value, TemplateError> {
        let err = |msg: String| exec_err(p.line, &p.text, format!("error calling {name}: {msg}"));
        let want = |n: usize| -> Result<(), TemplateError> {
            if args.len() != n {
                return Err(exec_err(p.line, &p.text, format!("wrong number of args for {name}: want {n} got {}", args.len())));
            }
            Ok(())
        };
        if self.header && matches!(name, "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate") {
            return Ok(args.first().map(|v| Value::Str(v.display())).unwrap_or_default());
        }
        Ok(match name {
            "and" => {
                if args.is_empty() {
                    return Err(err("want at least 1 argument".into()));
                }
                args.iter().find(|v| !v.truthy()).unwrap_or(&args[args.len() - 1]).clone()
            }
            "or" => {
                if args.is_empty() {
                    return Err(err("want at least 1 argument".into()));
                }
                args.iter().find(|v| v.truthy()).unwrap_or(&args[args.len() - 1]).clone()
            }
            "not" => {
                want(1)?;
                Value::Bool(!args[0].truthy())
            }
            "len" => {
                want(1)?;
                Value::from(match &args[0] {
                    Value::Str(s) => s.len() as i64,
                    Value::List(l) => l.len() as i64,
                    Value::Map(m) => m.entries.len() as i64,
                    other => return Err(err(format!("len of type {}", go_type(other)))),
                })
            }
            "index" => {
                if args.is_empty() {
                    return Err(err("want at least 1 argument".into()));
                }
                let mut cur = args[0].clone();
                for k in &args[1..] {
                    cur = index(&cur, k).map_err(err)?;
                }
                cur
            }
            "slice" => {
                if args.is_empty() {
                    return Err(err("want at least 1 argument".into()));
                }
                let idx: Vec<usize> = args[1..].iter().map(|a| as_int(a).map(|i| i.max(0) as usize)).collect::<Result<_, _>>().map_err(err)?;
                match &args[0] {
                    Value::Str(s) => {
                        let from = idx.first().copied().unwrap_or(0);
                        let to = idx.get(1).copied().unwrap_or(s.len());
                        Value::Str(s.get(from..to).ok_or_else(|| err(format!("index out of range: {to}")))?.to_string())
                    }
                    Value::List(l) => {
                        let from = idx.first().copied().unwrap_or(0);
                        let to = idx.get(1).copied().unwrap_or(l.len());
                        Value::List(l.get(from..to).ok_or_else(|| err(format!("index out of range: {to}")))?.to_vec())
                    }
                    other => return Err(err(format!("can't slice item of type {}", go_type(other)))),
                }
            }
            "print" => Value::Str(go_sprint(args)),
            "println" => Value::Str(args.iter().map(Value::display).collect::<Vec<_>>().join(" ") + "\n"),
            "printf" => {
                let Some(Value::Str(f)) = args.first() else {
                    return Err(err("the format must be a string".into()));
                };
                Value::Str(sprintf(f, &args[1..]))
            }
            "eq" => {
                if args.len() < 2 {
                    return Err(err("missing argument for comparison".into()));
                }
                Value::Bool(args[1..].iter().any(|b| compare(&args[0], b) == Some(std::cmp::Ordering::Equal)))
            }
            "ne" => {
                want(2)?;
                Value::Bool(compare(&args[0], &args[1]) != Some(std::cmp::Ordering::Equal))
            }
            "lt" | "le" | "gt" | "ge" => {
                want(2)?;
                let ord = compare(&args[0], &args[1]).ok_or_else(|| err("incompatible types for comparison".into()))?;
                Value::Bool(match name {
                    "lt" => ord.is_lt(),
                    "le" => ord.is_le(),
                    "gt" => ord.is_gt(),
                    _ => ord.is_ge(),
                })
            }
            "json" => {
                want(1)?;
                Value::Str(args[0].to_json())
            }
            "join" => {
                want(2)?;
                let sep = args[1].display();
                match &args[0] {
                    Value::List(l) => Value::Str(l.iter().map(Value::display).collect::<Vec<_>>().join(&sep)),
                    Value::Null | Value::Missing => Value::Str(String::new()),
                    other => return Err(err(format!("wrong type for value; expected []string; got {}", go_type(other)))),
                }
            }
            "split" => {
                want(2)?;
                let s = args[0].display();
                let sep = args[1].display();
                let parts: Vec<Value> = if sep.is_empty() {
                    s.chars().map(|c| Value::Str(c.to_string())).collect()
                } else {
                    s.split(sep.as_str()).map(Value::from).collect()
                };
                Value::List(parts)
            }
            "lower" => {
                want(1)?;
                Value::Str(args[0].display().to_lowercase())
            }
            "upper" => {
                want(1)?;
                Value::Str(args[0].display().to_uppercase())
            }
            "title" => {
                want(1)?;
                Value::Str(title(&args[0].display()))
            }
            "pad" => {
                want(3)?;
                let s = args[0].display();
                if s.is_empty() {
                    Value::Str(s)
                } else {
                    let pre = as_int(&args[1]).map_err(err)?.max(0) as usize;
                    let post = as_int(&args[2]).map_err(err)?.max(0) as usize;
                    Value::Str(format!("{}{s}{}", " ".repeat(pre), " ".repeat(post)))
                }
            }
            "truncate" => {
                want(2)?;
                let s = args[0].display();
                let n = as_int(&args[1]).map_err(err)?.max(0) as usize;
                if s.len() < n {
                    Value::Str(s)
                } else {
                    let mut end = n;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    Value::Str(s[..end].to_string())
                }
            }
            _ => return Err(parse_err(p.line, format!("function {name:?} not defined"))),
        })
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Missing | Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Num(n) if n.is_f64() => "float64",
        Value::Num(_) => "int",
        Value::Str(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Func(_) => "func",
    }
}

fn as_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Num(n) => n.as_i64().ok_or_else(|| format!("non-integer {n}")),
        other => Err(format!("cannot index with type {}", go_type(other))),
    }
}

fn index(cur: &Value, key: &Value) -> Result<Value, String> {
    match cur {
        Value::List(l) => {
            let i = as_int(key)?;
            l.get(i as usize)
                .filter(|_| i >= 0)
                .cloned()
                .ok_or_else(|| format!("index out of range: {i}"))
        }
        Value::Map(m) => {
            let k = match key {
                Value::Str(s) => s.clone(),
                other => return Err(format!("value has type {}; should be string", go_type(other))),
            };
            Ok(match m.get(&k) {
                Some(v) => v.clone(),
                // Docker's typed maps (labels, options) are map[string]string: a missing
                // key is "" there; a map of anything else gives Go's <no value>.
                None if !m.entries.is_empty() && m.entries.iter().all(|(_, v)| matches!(v, Value::Str(_))) => {
                    Value::Str(String::new())
                }
                None => Value::Missing,
            })
        }
        Value::Str(s) => {
            let i = as_int(key)?;
            s.as_bytes()
                .get(i as usize)
                .map(|b| Value::from(*b as i64))
                .ok_or_else(|| format!("index out of range: {i}"))
        }
        Value::Null | Value::Missing => Ok(Value::Missing),
        other => Err(format!("can't index item of type {}", go_type(other))),
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Num(x), Value::Num(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null | Value::Missing, Value::Null | Value::Missing) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// Go's `strings.Title`: upper-cases the first letter of every word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// Go's `fmt.Sprint`: spaces only between operands when neither is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            s.push(' ');
        }
        s.push_str(&a.display());
    }
    s
}

/// A `fmt.Sprintf` for the verbs templates use: %v %s %d %q %t %f %x %X %%,
/// with `-`, `0`, width and precision.
pub fn sprintf(f: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = f.chars().peekable();
    let mut argi = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut zero = false;
        let mut plus = false;
        while let Some(&fl) = it.peek() {
            match fl {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' | '#' => {}
                _ => break,
            }
            it.next();
        }
        let mut width = String::new();
        while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            it.next();
        }
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                it.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let mut s = match verb {
            'v' | 's' => {
                let s = arg.display();
                match prec {
                    Some(p) if verb == 's' => s.chars().take(p).collect(),
                    _ => s,
                }
            }
            'q' => {
                let mut q = String::new();
                super::value::write_json_string(&arg.display(), &mut q);
                q
            }
            't' => arg.display(),
            'd' => match arg {
                Value::Num(n) => {
                    let v = n.as_i64().unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64);
                    if plus && v >= 0 { format!("+{v}") } else { v.to_string() }
                }
                other => format!("%!d({})", other.display()),
            },
            'f' | 'F' | 'e' | 'g' => match arg {
                Value::Num(n) => {
                    let v = n.as_f64().unwrap_or(0.0);
                    match verb {
                        'e' => format!("{:.*e}", prec.unwrap_or(6), v),
                        'g' => super::units::go_fmt_g(v, prec.unwrap_or(6)),
                        _ => format!("{:.*}", prec.unwrap_or(6), v),
                    }
                }
                other => format!("%!{verb}({})", other.display()),
            },
            'x' | 'X' => {
                let h = match arg {
                    Value::Num(n) => format!("{:x}", n.as_i64().unwrap_or(0)),
                    other => other.display().bytes().map(|b| format!("{b:02x}")).collect(),
                };
                if verb == 'X' { h.to_uppercase() } else { h }
            }
            other => format!("%!{other}({})", arg.display()),
        };
        if let Ok(w) = width.parse::<usize>() {
            let len = s.chars().count();
            if len < w {
                let pad = w - len;
                if left {
                    s.push_str(&" ".repeat(pad));
                } else if zero && matches!(verb, 'd' | 'f' | 'x' | 'X') {
                    let neg = s.starts_with('-');
                    let digits = if neg { &s[1..] } else { &s[..] };
                    s = format!("{}{}{}", if neg { "-" } else { "" }, "0".repeat(pad), digits);
                } else {
                    s = format!("{}{s}", " ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        out.push_str(&args[argi..].iter().map(Value::display).collect::<Vec<_>>().join(", "));
        out.push(')');
    }
    out
}

/// A struct-like object for formatter contexts (unknown fields are errors).
pub fn context(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(Map { entries: entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), strict: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, data: &Value) -> String {
        Template::parse(t).unwrap().execute(data).unwrap()
    }

    fn inspect() -> Value {
        Value::from_json_str(
            r#"{"Id":"abc","Name":"/web","State":{"Status":"running","Running":true,"Pid":42},
               "Config":{"Env":["A=1","B=2"],"Labels":{"x":"1","a.b":"2"},"Cmd":null},
               "Mounts":[{"Source":"/s1","Destination":"/d1"},{"Source":"/s2","Destination":"/d2"}],
               "NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn fields_and_json() {
        let d = inspect();
        assert_eq!(render("{{.State.Status}}", &d), "running");
        assert_eq!(render("{{.Name}} {{.State.Pid}}", &d), "/web 42");
        assert_eq!(render("{{json .State}}", &d), r#"{"Status":"running","Running":true,"Pid":42}"#);
        assert_eq!(render("{{.Config.Env}}", &d), "[A=1 B=2]");
        assert_eq!(render("{{.Nope}}", &d), "<no value>");
        assert_eq!(render("{{json .Config.Cmd}}", &d), "null");
        assert_eq!(render("{{.State | json}}", &d), r#"{"Status":"running","Running":true,"Pid":42}"#);
    }

    #[test]
    fn range_index_join_and_vars() {
        let d = inspect();
        assert_eq!(render("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &d), "/s1:/d1 /s2:/d2 ");
        assert_eq!(render("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}};{{end}}", &d), "0=/s1;1=/s2;");
        assert_eq!(render(r#"{{index .Config.Labels "a.b"}}"#, &d), "2");
        assert_eq!(render(r#"{{index .Config.Labels "none"}}"#, &d), "");
        assert_eq!(render(r#"{{join .Config.Env ","}}"#, &d), "A=1,B=2");
        assert_eq!(render("{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}{{end}}", &d), "bridge 172.17.0.2");
        assert_eq!(render("{{$n := .Name}}{{$n}}{{with .State}}{{$n}}-{{.Pid}}{{end}}", &d), "/web/web-42");
        assert_eq!(render("{{(index .Mounts 1).Source}}", &d), "/s2");
        assert_eq!(render("{{range .Config.Cmd}}x{{else}}none{{end}}", &d), "none");
        assert_eq!(render("{{len .Mounts}}", &d), "2");
    }

    #[test]
    fn conditionals_and_functions() {
        let d = inspect();
        assert_eq!(render(r#"{{if eq .State.Status "running"}}up{{else}}down{{end}}"#, &d), "up");
        assert_eq!(render(r#"{{if not .State.Running}}a{{else if .State.Pid}}b{{else}}c{{end}}"#, &d), "b");
        assert_eq!(render(r#"{{upper .State.Status}} {{title "hello world"}} {{lower "ABC"}}"#, &d), "RUNNING Hello World abc");
        assert_eq!(render(r#"{{printf "%-6s|%3d|%.1f" "ab" 7 2.25}}"#, &d), "ab    |  7|2.2");
        assert_eq!(render(r#"{{truncate .Id 2}}{{pad "x" 1 2}}|{{pad "" 1 2}}|"#, &d), "ab x  ||");
        assert_eq!(render(r#"{{split "a,b" ","}}"#, &d), "[a b]");
        assert_eq!(render(r#"{{and 1 0}} {{or 0 "x"}} {{gt 2 1}} {{ne "a" "b"}}"#, &d), "0 x true true");
        assert_eq!(render("a  {{- \"b\" -}}  c {{/* note */}}", &d), "abc ");
    }

    #[test]
    fn strict_contexts_and_methods() {
        let labels = Value::Map(Map::new().with("com.x", "1"));
        let ctx = context(vec![
            ("ID", "abc".into()),
            ("Label", Value::method(move |a| {
                let k = a.first().map(Value::display).unwrap_or_default();
                Ok(labels.get(&k).cloned().unwrap_or(Value::from("")))
            })),
        ]);
        assert_eq!(render(r#"{{.ID}} {{.Label "com.x"}}"#, &ctx), "abc 1");
        let err = Template::parse("{{.Foo}}").unwrap().execute(&ctx).unwrap_err();
        assert!(err.0.contains("can't evaluate field Foo"), "{err}");
        assert_eq!(render("{{json .}}", &ctx), r#"{"ID":"abc"}"#);
    }

    #[test]
    fn header_mode_passes_titles_through() {
        let h = Value::Map(Map::new().with("ID", "CONTAINER ID").with("Names", "NAMES"));
        let t = Template::parse("{{.ID}}\t{{lower .Names}}\t{{json .ID}}").unwrap();
        assert_eq!(t.execute_header(&h), "CONTAINER ID\tNAMES\tCONTAINER ID");
    }

    #[test]
    fn parse_errors_are_go_like() {
        assert_eq!(Template::parse("{{.ID").unwrap_err().0, "template: :1: unclosed action");
        assert!(Template::parse("{{if .A}}x").unwrap_err().0.contains("unexpected EOF"));
        assert!(Template::parse("{{end}}").is_err());
        assert_eq!(Template::parse("{{nosuch .A}}").unwrap_err().0, "template: :1: function \"nosuch\" not defined");
    }
}
