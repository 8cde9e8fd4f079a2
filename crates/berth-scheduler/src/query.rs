//! ECS's cluster query language: a tokenizer, a recursive-descent parser into [`Expr`], and
//! its evaluation against a container instance of a [`Snapshot`](crate::Snapshot).
//!
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := unary (("and" | "&&") unary)*
//! unary   := ("not" | "!") unary | "(" expr ")" | compare
//! compare := subject operator [argument]
//! subject := attribute:NAME | task:group | runningTasksCount | ec2InstanceId | registeredAt
//!          | agentConnected | agentVersion
//! argument:= value | "[" value ("," value)* "]"      (values bare or 'quoted' / "quoted")
//! ```
//!
//! Operators: `==`/`equals`, `!=`/`not_equals`, `>`/`greater_than`, `>=`/`greater_than_equal`,
//! `<`/`less_than`, `<=`/`less_than_equal`, `exists`, `!exists`/`not_exists`, `in`,
//! `!in`/`not_in`, `=~`/`matches`, `!~`/`not_matches`. Keywords are case-insensitive.
//! `matches` takes a wildcard pattern (`*` any run of characters, `?` one character); ECS
//! documents Java regular expressions, whose common use (`t2.*`) means the same thing here
//! for values without regex metacharacters.

use std::fmt;

use crate::snapshot::Instance;

/// Why an expression was refused: what was wrong and where (a character offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct QueryError {
    pub message: String,
    pub position: usize,
}

/// What an expression compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Attribute(String),
    TaskGroup,
    RunningTasksCount,
    Ec2InstanceId,
    RegisteredAt,
    AgentConnected,
    AgentVersion,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Attribute(n) => write!(f, "attribute:{n}"),
            Subject::TaskGroup => f.write_str("task:group"),
            Subject::RunningTasksCount => f.write_str("runningTasksCount"),
            Subject::Ec2InstanceId => f.write_str("ec2InstanceId"),
            Subject::RegisteredAt => f.write_str("registeredAt"),
            Subject::AgentConnected => f.write_str("agentConnected"),
            Subject::AgentVersion => f.write_str("agentVersion"),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Exists => "exists",
            Op::NotExists => "!exists",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Matches => "=~",
            Op::NotMatches => "!~",
        }
    }
    fn from_word(w: &str) -> Option<Op> {
        Some(match w.to_ascii_lowercase().as_str() {
            "equals" => Op::Eq,
            "not_equals" => Op::Ne,
            "greater_than" => Op::Gt,
            "greater_than_equal" => Op::Ge,
            "less_than" => Op::Lt,
            "less_than_equal" => Op::Le,
            "exists" => Op::Exists,
            "not_exists" => Op::NotExists,
            "in" => Op::In,
            "not_in" => Op::NotIn,
            "matches" => Op::Matches,
            "not_matches" => Op::NotMatches,
            _ => return None,
        })
    }
    fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Argument {
    None,
    Value(Value),
    List(Vec<Value>),
}

/// A literal, typed by the subject it is compared with when the expression is parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    /// Milliseconds since the epoch (registeredAt).
    Time(i64),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Compare {
        subject: Subject,
        op: Op,
        arg: Argument,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Sym(&'static str),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "'{w}'"),
            Tok::Quoted(w) => write!(f, "quoted '{w}'"),
            Tok::Sym(s) => write!(f, "'{s}'"),
        }
    }
}

fn err(message: impl Into<String>, position: usize) -> QueryError {
    QueryError {
        message: message.into(),
        position,
    }
}

const SYMBOLS: [&str; 16] = [
    "==", "!=", ">=", "<=", "=~", "!~", "&&", "||", ">", "<", "!", "(", ")", "[", "]", ",",
];

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !"()[],=!<>&|'\"~".contains(c)
}

fn tokenize(q: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
    let mut out = Vec::new();
    let mut i = 0;
    let bytes: Vec<(usize, char)> = q.char_indices().collect();
    while i < bytes.len() {
        let (pos, c) = bytes[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            let mut j = i + 1;
            let mut s = String::new();
            while j < bytes.len() && bytes[j].1 != c {
                s.push(bytes[j].1);
                j += 1;
            }
            if j == bytes.len() {
                return Err(err(
                    format!("unterminated quoted value starting with {c}"),
                    pos,
                ));
            }
            out.push((Tok::Quoted(s), pos));
            i = j + 1;
            continue;
        }
        let rest = &q[pos..];
        if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            out.push((Tok::Sym(sym), pos));
            i += sym.chars().count();
            continue;
        }
        if !is_word_char(c) {
            return Err(err(format!("unexpected character '{c}'"), pos));
        }
        let mut j = i;
        let mut s = String::new();
        while j < bytes.len() && is_word_char(bytes[j].1) {
            s.push(bytes[j].1);
            j += 1;
        }
        out.push((Tok::Word(s), pos));
        i = j;
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    i: usize,
    end: usize,
    _q: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }
    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.i + k).map(|(t, _)| t)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.i).map(|(_, p)| *p).unwrap_or(self.end)
    }
    fn found(&self) -> String {
        match self.peek() {
            Some(t) => t.to_string(),
            None => "end of expression".into(),
        }
    }
    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
    }
    fn is_sym(&self, sym: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym)
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and()?;
        while self.is_keyword("or") || self.is_sym("||") {
            self.i += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        while self.is_keyword("and") || self.is_sym("&&") {
            self.i += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.is_keyword("not") || self.is_sym("!") {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.is_sym("(") {
            let open = self.pos();
            self.i += 1;
            let e = self.or()?;
            if !self.is_sym(")") {
                return Err(err(
                    format!(
                        "expected ')' to close the '(' at position {open}, found {}",
                        self.found()
                    ),
                    self.pos(),
                ));
            }
            self.i += 1;
            return Ok(e);
        }
        self.compare()
    }

    fn subject(&mut self) -> Result<Subject, QueryError> {
        let pos = self.pos();
        let Some(Tok::Word(w)) = self.peek().cloned() else {
            return Err(err(
                format!(
                    "expected a subject (such as attribute:NAME), found {}",
                    self.found()
                ),
                pos,
            ));
        };
        self.i += 1;
        let lower = w.to_ascii_lowercase();
        if let Some(name) = lower
            .starts_with("attribute:")
            .then(|| &w["attribute:".len()..])
        {
            if name.is_empty() {
                return Err(err("attribute: needs an attribute name", pos));
            }
            return Ok(Subject::Attribute(name.to_string()));
        }
        Ok(match lower.as_str() {
            "task:group" => Subject::TaskGroup,
            "runningtaskscount" => Subject::RunningTasksCount,
            "ec2instanceid" => Subject::Ec2InstanceId,
            "registeredat" => Subject::RegisteredAt,
            "agentconnected" => Subject::AgentConnected,
            "agentversion" => Subject::AgentVersion,
            _ => {
                return Err(err(
                    format!(
                        "unknown subject '{w}' (expected attribute:NAME, task:group, runningTasksCount, ec2InstanceId, registeredAt, agentConnected or agentVersion)"
                    ),
                    pos,
                ));
            }
        })
    }

    fn op(&mut self, subject: &Subject) -> Result<Op, QueryError> {
        let pos = self.pos();
        let bang_word = |w: &str| match w.to_ascii_lowercase().as_str() {
            "exists" => Some(Op::NotExists),
            "in" => Some(Op::NotIn),
            _ => None,
        };
        let (op, width) = match (self.peek(), self.peek_at(1)) {
            (Some(Tok::Sym("!")), Some(Tok::Word(w))) if bang_word(w).is_some() => {
                (bang_word(w), 2)
            }
            (Some(Tok::Sym(s)), _) => (
                match *s {
                    "==" => Some(Op::Eq),
                    "!=" => Some(Op::Ne),
                    ">" => Some(Op::Gt),
                    ">=" => Some(Op::Ge),
                    "<" => Some(Op::Lt),
                    "<=" => Some(Op::Le),
                    "=~" => Some(Op::Matches),
                    "!~" => Some(Op::NotMatches),
                    _ => None,
                },
                1,
            ),
            (Some(Tok::Word(w)), _) => (Op::from_word(w), 1),
            _ => (None, 1),
        };
        let Some(op) = op else {
            return Err(err(
                format!(
                    "expected an operator after {subject}, found {}",
                    self.found()
                ),
                pos,
            ));
        };
        let allowed = match subject {
            Subject::Attribute(_) => true,
            Subject::TaskGroup => !op.is_ordering(),
            Subject::RunningTasksCount | Subject::RegisteredAt | Subject::AgentVersion => {
                matches!(op, Op::Eq | Op::Ne) || op.is_ordering()
            }
            Subject::Ec2InstanceId | Subject::AgentConnected => matches!(
                op,
                Op::Eq | Op::Ne | Op::In | Op::NotIn | Op::Matches | Op::NotMatches
            ),
        };
        if !allowed {
            return Err(err(
                format!("operator '{}' is not valid for {subject}", op.name()),
                pos,
            ));
        }
        self.i += width;
        Ok(op)
    }

    fn value(&mut self, subject: &Subject) -> Result<Value, QueryError> {
        let pos = self.pos();
        let text = match self.peek() {
            Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => w.clone(),
            _ => {
                return Err(err(
                    format!("expected a value for {subject}, found {}", self.found()),
                    pos,
                ));
            }
        };
        self.i += 1;
        Ok(match subject {
            Subject::RunningTasksCount => Value::Int(text.parse().map_err(|_| {
                err(
                    format!("runningTasksCount compares with a whole number, not '{text}'"),
                    pos,
                )
            })?),
            Subject::RegisteredAt => Value::Time(parse_time(&text).ok_or_else(|| {
                err(
                    format!(
                        "'{text}' is not a date (formats: 2018-06-18T22:28:28+00:00, 2018-06-18T22:28:28Z, 2018-06-18T22:28:28, 2018-06-18)"
                    ),
                    pos,
                )
            })?),
            _ => Value::Text(text),
        })
    }

    fn compare(&mut self) -> Result<Expr, QueryError> {
        let subject = self.subject()?;
        let op = self.op(&subject)?;
        let arg = match op {
            Op::Exists | Op::NotExists => Argument::None,
            Op::In | Op::NotIn => {
                if !self.is_sym("[") {
                    return Err(err(
                        format!(
                            "'{}' expects a list such as [a, b], found {}",
                            op.name(),
                            self.found()
                        ),
                        self.pos(),
                    ));
                }
                let open = self.pos();
                self.i += 1;
                let mut values = vec![self.value(&subject)?];
                loop {
                    if self.is_sym(",") {
                        self.i += 1;
                        values.push(self.value(&subject)?);
                    } else if self.is_sym("]") {
                        self.i += 1;
                        break;
                    } else {
                        return Err(err(
                            format!(
                                "expected ',' or ']' in the list opened at position {open}, found {}",
                                self.found()
                            ),
                            self.pos(),
                        ));
                    }
                }
                Argument::List(values)
            }
            _ => Argument::Value(self.value(&subject)?),
        };
        Ok(Expr::Compare { subject, op, arg })
    }
}

/// Parses a cluster query language expression.
pub fn parse(q: &str) -> Result<Expr, QueryError> {
    let toks = tokenize(q)?;
    if toks.is_empty() {
        return Err(err("the expression is empty", 0));
    }
    let mut p = Parser {
        toks,
        i: 0,
        end: q.len(),
        _q: q,
    };
    let e = p.or()?;
    if p.i < p.toks.len() {
        return Err(err(
            format!(
                "expected 'and', 'or' or the end of the expression, found {}",
                p.found()
            ),
            p.pos(),
        ));
    }
    Ok(e)
}

/// Milliseconds since the epoch of `YYYY-MM-DD[THH:MM:SS[Z|±HH:MM]]` (UTC when no offset).
pub fn parse_time(s: &str) -> Option<i64> {
    let num = |t: &str| -> Option<i64> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut secs = days_from_civil(y, m, day) * 86_400;
    if let Some(t) = time {
        let (clock, offset) = if let Some(c) = t.strip_suffix('Z') {
            (c, 0)
        } else if let Some(i) = t.find(['+', '-']) {
            let (c, o) = t.split_at(i);
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':')?;
            (c, sign * (num(oh)? * 3600 + num(om)? * 60))
        } else {
            (t, 0)
        };
        let mut c = clock.split(':');
        let (h, mi, se) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
        if c.next().is_some() || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se - offset;
    }
    Some(secs * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `*` any run of characters, `?` exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Orders two version-like strings part by part (numerically where both parts are numbers).
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<String> {
        s.trim_start_matches('v')
            .split(['.', '-'])
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            _ => x.cmp(y),
        };
        if o.is_ne() {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Orders an attribute value against a literal: numerically when both are numbers.
fn compare_text(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.cmp(b),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Int(i) | Value::Time(i) => i.to_string(),
    }
}

/// The result of `op` on one present string value.
fn on_text(
    op: Op,
    have: &str,
    arg: &Argument,
    order: fn(&str, &str) -> std::cmp::Ordering,
) -> bool {
    use std::cmp::Ordering::*;
    match (op, arg) {
        (Op::Eq, Argument::Value(v)) => have == text(v),
        (Op::Ne, Argument::Value(v)) => have != text(v),
        (Op::Gt, Argument::Value(v)) => order(have, &text(v)) == Greater,
        (Op::Ge, Argument::Value(v)) => order(have, &text(v)) != Less,
        (Op::Lt, Argument::Value(v)) => order(have, &text(v)) == Less,
        (Op::Le, Argument::Value(v)) => order(have, &text(v)) != Greater,
        (Op::In, Argument::List(vs)) => vs.iter().any(|v| have == text(v)),
        (Op::NotIn, Argument::List(vs)) => !vs.iter().any(|v| have == text(v)),
        (Op::Matches, Argument::Value(v)) => wildcard_match(&text(v), have),
        (Op::NotMatches, Argument::Value(v)) => !wildcard_match(&text(v), have),
        (Op::Exists, _) => true,
        (Op::NotExists, _) => false,
        _ => false,
    }
}

/// The result of `op` when the subject is absent: only the negative operators hold.
fn on_absent(op: Op) -> bool {
    matches!(op, Op::Ne | Op::NotIn | Op::NotMatches | Op::NotExists)
}

fn on_int(op: Op, have: i64, arg: &Argument) -> bool {
    let Argument::Value(Value::Int(v) | Value::Time(v)) = arg else {
        return false;
    };
    match op {
        Op::Eq => have == *v,
        Op::Ne => have != *v,
        Op::Gt => have > *v,
        Op::Ge => have >= *v,
        Op::Lt => have < *v,
        Op::Le => have <= *v,
        _ => false,
    }
}

impl Expr {
    /// Whether `instance` (with the tasks it holds, `extra_groups` included: tasks of the
    /// placement in progress) satisfies the expression.
    pub fn matches(&self, instance: &Instance, extra_groups: &[&str]) -> bool {
        match self {
            Expr::Not(e) => !e.matches(instance, extra_groups),
            Expr::And(a, b) => {
                a.matches(instance, extra_groups) && b.matches(instance, extra_groups)
            }
            Expr::Or(a, b) => {
                a.matches(instance, extra_groups) || b.matches(instance, extra_groups)
            }
            Expr::Compare { subject, op, arg } => {
                let op = *op;
                let opt_text = |v: Option<&str>, order| match v {
                    Some(v) => on_text(op, v, arg, order),
                    None => on_absent(op),
                };
                match subject {
                    Subject::Attribute(name) => match instance.attributes.get(name) {
                        None => on_absent(op),
                        Some(v) => on_text(op, v.as_deref().unwrap_or(""), arg, compare_text),
                    },
                    Subject::Ec2InstanceId => {
                        opt_text(instance.ec2_instance_id.as_deref(), compare_text)
                    }
                    Subject::AgentVersion => {
                        opt_text(instance.agent_version.as_deref(), compare_versions)
                    }
                    Subject::AgentConnected => on_text(
                        op,
                        if instance.agent_connected {
                            "true"
                        } else {
                            "false"
                        },
                        arg,
                        compare_text,
                    ),
                    Subject::RunningTasksCount => {
                        on_int(op, i64::from(instance.running_tasks_count), arg)
                    }
                    Subject::RegisteredAt => match instance.registered_at_ms {
                        Some(t) => on_int(op, t, arg),
                        None => on_absent(op),
                    },
                    Subject::TaskGroup => {
                        // The instance holds tasks of several groups: a positive operator
                        // holds when some task's group satisfies it, a negative one when
                        // none is in the way (`!=` is `not ==`).
                        let mut groups = instance
                            .tasks
                            .counted()
                            .filter_map(|(t, _)| t.group.as_deref())
                            .chain(extra_groups.iter().copied());
                        let positive = match op {
                            Op::Ne => Op::Eq,
                            Op::NotIn => Op::In,
                            Op::NotMatches => Op::Matches,
                            Op::NotExists => Op::Exists,
                            o => o,
                        };
                        let any = groups.any(|g| on_text(positive, g, arg, compare_text));
                        if positive == op { any } else { !any }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Instance, RunningTask};

    fn inst() -> Instance {
        let mut i = Instance::new("i1", "arn:i1");
        i.attributes
            .insert("ecs.instance-type".into(), Some("t2.small".into()));
        i.attributes
            .insert("ecs.availability-zone".into(), Some("us-east-1a".into()));
        i.attributes.insert("stack".into(), Some("prod".into()));
        i.attributes.insert("gpu-ready".into(), None);
        i.attributes.insert("cores".into(), Some("16".into()));
        i.ec2_instance_id = Some("i-abcd1234".into());
        i.running_tasks_count = 1;
        i.registered_at_ms = parse_time("2018-06-18T22:28:28Z");
        i.agent_version = Some("1.14.5".into());
        i.tasks.push(RunningTask {
            group: Some("service:production".into()),
            family: "web".into(),
        });
        i
    }

    fn yes(q: &str) -> bool {
        match parse(q) {
            Ok(e) => e.matches(&inst(), &[]),
            Err(e) => panic!("{q}: {e}"),
        }
    }

    #[test]
    fn documented_examples() {
        assert!(yes("attribute:ecs.instance-type == t2.small"));
        assert!(yes(
            "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"
        ));
        assert!(yes(
            "attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone != us-east-1d"
        ));
        assert!(yes("task:group == service:production"));
        assert!(yes("not(task:group == database)"));
        assert!(yes("runningTasksCount == 1"));
        assert!(!yes("agentVersion < 1.14.5"));
        assert!(yes("agentVersion < 1.14.10"));
        assert!(yes("registeredAt < 2018-06-19"));
        assert!(!yes("registeredAt < 2018-02-13"));
        assert!(yes("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']"));
    }

    #[test]
    fn operators_and_precedence() {
        assert!(yes("attribute:stack==prod"));
        assert!(yes("attribute:stack equals prod"));
        assert!(yes("attribute:stack exists && attribute:gpu-ready exists"));
        assert!(yes("attribute:missing !exists"));
        assert!(yes("attribute:missing not_exists"));
        assert!(yes("attribute:missing != x"));
        assert!(!yes("attribute:missing == x"));
        assert!(yes("attribute:stack !in [dev, test]"));
        assert!(yes("attribute:stack not_in [dev]"));
        assert!(!yes("attribute:stack in [dev]"));
        assert!(yes("attribute:stack =~ p?o*"));
        assert!(yes("attribute:stack !~ d*"));
        assert!(yes("attribute:cores > 8 and attribute:cores <= 16"));
        assert!(!yes("attribute:cores > 100"));
        assert!(yes("attribute:stack == dev or attribute:stack == prod"));
        // and binds tighter than or
        assert!(yes(
            "attribute:stack == prod or attribute:stack == dev and attribute:x exists"
        ));
        assert!(!yes(
            "(attribute:stack == prod or attribute:stack == dev) and attribute:x exists"
        ));
        assert!(yes("! attribute:stack == dev"));
        assert!(yes(
            "NOT (attribute:stack == dev) AND runningTasksCount >= 1"
        ));
        assert!(yes("task:group != database"));
        assert!(!yes("task:group != service:production"));
        assert!(yes("task:group =~ service:*"));
        assert!(yes("agentConnected == true"));
        assert!(!yes("agentConnected in [false]"));
        assert!(yes("attribute:ecs.availability-zone == \"us-east-1a\""));
    }

    #[test]
    fn extra_groups_count() {
        let e = parse("not(task:group == batch)").unwrap();
        assert!(e.matches(&inst(), &[]));
        assert!(!e.matches(&inst(), &["batch"]));
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = |q: &str| parse(q).unwrap_err();
        assert_eq!(
            e("attribute:stack ==").to_string(),
            "expected a value for attribute:stack, found end of expression at position 18"
        );
        assert_eq!(
            e("attribute:stack in [prod").to_string(),
            "expected ',' or ']' in the list opened at position 19, found end of expression at position 24"
        );
        assert_eq!(e("").message, "the expression is empty");
        assert!(e("foo == bar").message.starts_with("unknown subject 'foo'"));
        assert_eq!(
            e("runningTasksCount =~ 1*").message,
            "operator '=~' is not valid for runningTasksCount"
        );
        assert_eq!(
            e("runningTasksCount > many").message,
            "runningTasksCount compares with a whole number, not 'many'"
        );
        assert!(
            e("registeredAt < yesterday")
                .message
                .contains("is not a date")
        );
        assert_eq!(
            e("(attribute:a exists").message,
            "expected ')' to close the '(' at position 0, found end of expression"
        );
        assert_eq!(
            e("attribute:a exists attribute:b exists").message,
            "expected 'and', 'or' or the end of the expression, found 'attribute:b'"
        );
        assert_eq!(e("attribute:a = b").message, "unexpected character '='");
        assert!(e("attribute:a == 'b").message.starts_with("unterminated"));
        assert_eq!(
            e("attribute: exists").message,
            "attribute: needs an attribute name"
        );
        assert!(e("attribute:a in b").message.contains("expects a list"));
    }

    #[test]
    fn times_and_wildcards() {
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("1970-01-02T00:00:01Z"), Some(86_401_000));
        assert_eq!(
            parse_time("2018-06-18T22:28:28+00:00"),
            parse_time("2018-06-18T22:28:28")
        );
        assert_eq!(
            parse_time("2018-06-18T23:28:28+01:00"),
            parse_time("2018-06-18T22:28:28Z")
        );
        assert_eq!(parse_time("2018-13-01"), None);
        assert!(wildcard_match("t2.*", "t2.micro"));
        assert!(!wildcard_match("t2.*", "t3.micro"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a?c", "ac"));
    }
}
