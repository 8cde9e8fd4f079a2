//! CloudWatch Logs filter patterns, parsed once and matched against event messages. Pure.
//!
//! Served syntax:
//! - empty pattern: every event;
//! - terms: `ERROR timeout` (every term must occur, case-sensitive), `"quoted phrase"`,
//!   `?ERROR ?WARN` (at least one of the `?` terms), `-DEBUG` / `-"health check"`
//!   (the event must not contain it);
//! - JSON selectors on events whose message is a JSON object: `{ $.level = "error" }`,
//!   `{ $.latency > 100 }`, `=`, `!=`, `<`, `<=`, `>`, `>=`, strings with `*` wildcards,
//!   `IS NULL`, `NOT EXISTS`, `IS TRUE`, `IS FALSE`, paths with `.name` and `[index]`,
//!   `&&`, `||` and parentheses.
//!
//! Space-delimited (`[a, b, ...]`) and regular-expression (`%...%`) patterns are refused as
//! invalid for now.

use serde_json::Value;

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    All,
    Terms(Terms),
    Json(Expr),
}

/// A term pattern: every `required`, at least one of `any` (when there are some), none of
/// `excluded`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Terms {
    pub required: Vec<String>,
    pub any: Vec<String>,
    pub excluded: Vec<String>,
}

/// A JSON selector expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Compare { path: Vec<Step>, op: Op, value: Lit },
    Test { path: Vec<Step>, test: Test },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Field(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    Null,
    NotExists,
    True,
    False,
}

/// Parses `pattern`; the error says what is wrong (for InvalidParameterException).
pub fn parse(pattern: &str) -> Result<Pattern, String> {
    let p = pattern.trim();
    if p.is_empty() {
        return Ok(Pattern::All);
    }
    if p.starts_with('{') {
        return parse_json(p).map(Pattern::Json);
    }
    if p.starts_with('[') {
        return Err("space-delimited filter patterns are not supported yet".into());
    }
    if p.starts_with('%') {
        return Err("regular-expression filter patterns are not supported yet".into());
    }
    parse_terms(p).map(Pattern::Terms)
}

impl Pattern {
    /// Whether an event with `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Terms(t) => {
                t.required.iter().all(|r| message.contains(r.as_str()))
                    && (t.any.is_empty() || t.any.iter().any(|a| message.contains(a.as_str())))
                    && !t.excluded.iter().any(|e| message.contains(e.as_str()))
            }
            Pattern::Json(expr) => match serde_json::from_str::<Value>(message.trim()) {
                Ok(v @ (Value::Object(_) | Value::Array(_))) => eval(expr, &v),
                _ => false,
            },
        }
    }
}

fn parse_terms(p: &str) -> Result<Terms, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut terms = Terms::default();
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut kind = ' ';
        if chars[i] == '?' || chars[i] == '-' {
            kind = chars[i];
            i += 1;
        }
        let mut term = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            let mut closed = false;
            while i < chars.len() {
                match chars[i] {
                    '\\' if i + 1 < chars.len() => {
                        term.push(chars[i + 1]);
                        i += 2;
                    }
                    '"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        term.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err(format!("unterminated quoted term in '{p}'"));
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '"' {
                    return Err(format!("invalid character '\"' inside a term of '{p}'"));
                }
                term.push(chars[i]);
                i += 1;
            }
        }
        if term.is_empty() {
            return Err(format!("empty term in '{p}'"));
        }
        match kind {
            '?' => terms.any.push(term),
            '-' => terms.excluded.push(term),
            _ => terms.required.push(term),
        }
    }
    Ok(terms)
}

/// A token of a JSON selector.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Op(Op),
    Path(Vec<Step>),
    Str(String),
    Word(String),
}

fn tokenize(body: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '&' if next == Some('&') => {
                out.push(Tok::And);
                i += 2;
            }
            '|' if next == Some('|') => {
                out.push(Tok::Or);
                i += 2;
            }
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += 1;
            }
            '!' if next == Some('=') => {
                out.push(Tok::Op(Op::Ne));
                i += 2;
            }
            '<' | '>' => {
                let eq = next == Some('=');
                out.push(Tok::Op(match (c, eq) {
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    (_, true) => Op::Ge,
                    _ => Op::Gt,
                }));
                i += if eq { 2 } else { 1 };
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    match chars[i] {
                        '\\' if i + 1 < chars.len() => {
                            s.push(chars[i + 1]);
                            i += 2;
                        }
                        '"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        ch => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                if !closed {
                    return Err("unterminated string in JSON filter pattern".into());
                }
                out.push(Tok::Str(s));
            }
            '$' => {
                i += 1;
                let mut path = Vec::new();
                loop {
                    match chars.get(i) {
                        Some('.') => {
                            i += 1;
                            let start = i;
                            while i < chars.len()
                                && (chars[i].is_alphanumeric()
                                    || chars[i] == '_'
                                    || chars[i] == '-'
                                    || chars[i] == '@'
                                    || chars[i] == '$')
                            {
                                i += 1;
                            }
                            if start == i {
                                return Err("a selector step after '.' needs a name".into());
                            }
                            path.push(Step::Field(chars[start..i].iter().collect()));
                        }
                        Some('[') => {
                            i += 1;
                            let start = i;
                            while i < chars.len() && chars[i].is_ascii_digit() {
                                i += 1;
                            }
                            let n: String = chars[start..i].iter().collect();
                            if chars.get(i) != Some(&']') || n.is_empty() {
                                return Err("an array selector needs [index]".into());
                            }
                            i += 1;
                            path.push(Step::Index(n.parse().map_err(|_| "index too large")?));
                        }
                        _ => break,
                    }
                }
                if path.is_empty() {
                    return Err("a selector must name a field, as in $.level".into());
                }
                out.push(Tok::Path(path));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(
                        chars[i],
                        '(' | ')' | '=' | '!' | '<' | '>' | '&' | '|' | '"'
                    )
                {
                    i += 1;
                }
                if start == i {
                    return Err(format!("unexpected character '{c}' in JSON filter pattern"));
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn parse_json(p: &str) -> Result<Expr, String> {
    let body = p
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or("a JSON filter pattern must be enclosed in { }")?;
    let toks = tokenize(body)?;
    let mut parser = Parser { toks, pos: 0 };
    let expr = parser.or()?;
    if parser.pos != parser.toks.len() {
        return Err("unexpected input after the JSON filter expression".into());
    }
    Ok(expr)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.primary()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.primary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }
    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Open) => {
                let e = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    _ => Err("missing ')' in JSON filter pattern".into()),
                }
            }
            Some(Tok::Path(path)) => self.condition(path),
            _ => Err("expected a selector such as $.level".into()),
        }
    }
    fn condition(&mut self, path: Vec<Step>) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Op(op)) => {
                let value = match self.next() {
                    Some(Tok::Str(s)) => Lit::Str(s),
                    Some(Tok::Word(w)) => match w.parse::<f64>() {
                        Ok(n) => Lit::Num(n),
                        Err(_) => Lit::Str(w),
                    },
                    _ => return Err("a comparison needs a value".into()),
                };
                if matches!(value, Lit::Str(_)) && !matches!(op, Op::Eq | Op::Ne) {
                    return Err("strings can only be compared with = and !=".into());
                }
                Ok(Expr::Compare { path, op, value })
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IS") => match self.next() {
                Some(Tok::Word(v)) if v.eq_ignore_ascii_case("NULL") => Ok(Expr::Test {
                    path,
                    test: Test::Null,
                }),
                Some(Tok::Word(v)) if v.eq_ignore_ascii_case("TRUE") => Ok(Expr::Test {
                    path,
                    test: Test::True,
                }),
                Some(Tok::Word(v)) if v.eq_ignore_ascii_case("FALSE") => Ok(Expr::Test {
                    path,
                    test: Test::False,
                }),
                _ => Err("IS must be followed by NULL, TRUE or FALSE".into()),
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => match self.next() {
                Some(Tok::Word(v)) if v.eq_ignore_ascii_case("EXISTS") => Ok(Expr::Test {
                    path,
                    test: Test::NotExists,
                }),
                _ => Err("NOT must be followed by EXISTS".into()),
            },
            _ => Err("a selector must be followed by a comparison".into()),
        }
    }
}

fn select<'v>(v: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, step| match step {
        Step::Field(f) => v.as_object()?.get(f),
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

fn eval(expr: &Expr, v: &Value) -> bool {
    match expr {
        Expr::Or(items) => items.iter().any(|e| eval(e, v)),
        Expr::And(items) => items.iter().all(|e| eval(e, v)),
        Expr::Test { path, test } => {
            let found = select(v, path);
            match test {
                Test::NotExists => found.is_none(),
                Test::Null => found.is_some_and(Value::is_null),
                Test::True => found.and_then(Value::as_bool) == Some(true),
                Test::False => found.and_then(Value::as_bool) == Some(false),
            }
        }
        Expr::Compare { path, op, value } => {
            let Some(found) = select(v, path) else {
                return false;
            };
            match value {
                Lit::Num(n) => {
                    let Some(x) = found.as_f64() else {
                        // `$.code = 200` also matches the string "200".
                        return match (op, found.as_str()) {
                            (Op::Eq, Some(s)) => s.parse::<f64>().ok() == Some(*n),
                            (Op::Ne, Some(s)) => s.parse::<f64>().ok() != Some(*n),
                            _ => false,
                        };
                    };
                    match op {
                        Op::Eq => x == *n,
                        Op::Ne => x != *n,
                        Op::Lt => x < *n,
                        Op::Le => x <= *n,
                        Op::Gt => x > *n,
                        Op::Ge => x >= *n,
                    }
                }
                Lit::Str(s) => {
                    let text = match found {
                        Value::String(t) => t.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return false,
                    };
                    let m = glob(s, &text);
                    if *op == Op::Ne { !m } else { m }
                }
            }
        }
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, message: &str) -> bool {
        parse(pattern).unwrap().matches(message)
    }

    #[test]
    fn empty_matches_everything() {
        assert!(m("", "anything"));
        assert!(m("   ", ""));
    }

    #[test]
    fn terms_all_must_match_case_sensitively() {
        assert!(m("ERROR", "[ERROR] disk full"));
        assert!(!m("ERROR", "[error] disk full"));
        assert!(m("ERROR disk", "[ERROR] disk full"));
        assert!(!m("ERROR memory", "[ERROR] disk full"));
    }

    #[test]
    fn quoted_phrases() {
        assert!(m("\"disk full\"", "ERROR disk full now"));
        assert!(!m("\"disk full\"", "full disk"));
        assert!(m("\"say \\\"hi\\\"\"", "they say \"hi\""));
        assert!(parse("\"open").is_err());
    }

    #[test]
    fn alternatives_and_exclusions() {
        assert!(m("?ERROR ?WARN", "WARN low disk"));
        assert!(m("?ERROR ?WARN", "ERROR"));
        assert!(!m("?ERROR ?WARN", "INFO fine"));
        assert!(m("ERROR -timeout", "ERROR disk"));
        assert!(!m("ERROR -timeout", "ERROR timeout talking to db"));
        assert!(!m("ERROR -\"health check\"", "ERROR in health check"));
        assert!(m("request ?GET ?POST -200", "request POST 500"));
        assert!(!m("request ?GET ?POST -200", "request PUT 500"));
    }

    #[test]
    fn json_string_equality_and_wildcards() {
        let e = r#"{"level":"error","msg":"db down","user":{"id":7,"name":"ann"}}"#;
        assert!(m(r#"{ $.level = "error" }"#, e));
        assert!(m(r#"{$.level="error"}"#, e));
        assert!(!m(r#"{ $.level = "info" }"#, e));
        assert!(m(r#"{ $.level != "info" }"#, e));
        assert!(m(r#"{ $.msg = "db*" }"#, e));
        assert!(m(r#"{ $.user.name = ann }"#, e));
        assert!(!m(r#"{ $.level = "error" }"#, "level=error, not JSON"));
        assert!(!m(r#"{ $.missing = "x" }"#, e));
    }

    #[test]
    fn json_numbers_logic_and_tests() {
        let e = r#"{"latency":150,"ok":true,"gone":null,"tags":["a","b"],"code":"200"}"#;
        assert!(m("{ $.latency > 100 }", e));
        assert!(!m("{ $.latency < 100 }", e));
        assert!(m("{ $.latency >= 150 && $.latency <= 150 }", e));
        assert!(m("{ $.latency = 150 }", e));
        assert!(m("{ $.code = 200 }", e));
        assert!(m("{ $.latency < 100 || $.ok IS TRUE }", e));
        assert!(!m("{ $.latency < 100 && $.ok IS TRUE }", e));
        assert!(m(
            "{ ($.latency < 100 || $.ok IS TRUE) && $.tags[1] = \"b\" }",
            e
        ));
        assert!(m("{ $.gone IS NULL }", e));
        assert!(m("{ $.nothing NOT EXISTS }", e));
        assert!(!m("{ $.latency NOT EXISTS }", e));
        assert!(m("{ $.ok IS TRUE }", e));
        assert!(!m("{ $.ok IS FALSE }", e));
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for bad in [
            "{ $.level = }",
            "{ level = \"x\" }",
            "{ $.a > \"x\" }",
            "{ $.a = 1",
            "{ ($.a = 1 }",
            "{ $.a = 1 && }",
            "{ $. = 1 }",
            "[ip, user]",
            "%err%",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn glob_matching() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(glob("a*", "a"));
        assert!(!glob("a*c", "abd"));
        assert!(glob("*b*", "abc"));
    }
}
