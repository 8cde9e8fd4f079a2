//! Multiline events: `awslogs-datetime-format` (strftime tokens turned into a regular
//! expression with Docker's awslogs table) and `awslogs-multiline-pattern`. A line matching
//! the start pattern begins a new event; the lines after it that don't match belong to it. An
//! event is complete when the next start line arrives, when it would grow past the largest
//! event, or when no line came for [`FLUSH_AFTER_MS`] (or the output ended).

use regex::Regex;

/// The largest event message Docker's awslogs driver sends (256 KiB minus the per-event
/// overhead); longer multiline events are cut there.
pub const MAX_EVENT_BYTES: usize = 262_144 - 26;

/// A multiline event still waiting for more lines is complete after this long without one.
pub const FLUSH_AFTER_MS: u64 = 2_000;

/// Docker's awslogs conversion of strftime tokens (`awslogs-datetime-format`) to regular
/// expressions; everything else is kept as written (as Docker does, it is not escaped).
const STRFTIME: &[(&str, &str)] = &[
    ("%a", r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"),
    (
        "%A",
        r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
    ),
    ("%b", r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"),
    (
        "%B",
        r"(?:January|February|March|April|May|June|July|August|September|October|November|December)",
    ),
    ("%d", r"(?:0[1-9]|[1,2][0-9]|3[0,1])"),
    ("%H", r"(?:[0,1][0-9]|2[0-3])"),
    ("%I", r"(?:0[0-9]|1[0-2])"),
    ("%j", r"(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])"),
    ("%L", r"\.\d{3}"),
    ("%m", r"(?:0[1-9]|1[0-2])"),
    ("%M", r"[0-5][0-9]"),
    ("%p", r"[A,P]M"),
    ("%S", r"[0-5][0-9]"),
    ("%U", r"(?:0[0-9]|[1,2,3,4][0-9]|5[0-3])"),
    ("%w", r"[0-6]"),
    ("%W", r"(?:0[0-9]|[1,2,3,4][0-9]|5[0-3])"),
    ("%y", r"\d{2}"),
    ("%Y", r"\d{4}"),
    ("%z", r"[+-]\d{4}"),
    ("%Z", r"[A-Z]{1,4}T"),
    ("%f", r"\d{6}"),
];

/// Turns an `awslogs-datetime-format` into the regular expression Docker matches line
/// starts with (without the leading `^`).
pub fn datetime_to_regex(format: &str) -> String {
    let mut out = String::with_capacity(format.len() * 4);
    let mut rest = format;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("%%") {
            out.push('%');
            rest = t;
            continue;
        }
        match STRFTIME.iter().find(|(tok, _)| tail.starts_with(tok)) {
            Some((tok, re)) => {
                out.push_str(re);
                rest = &tail[tok.len()..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One line of a container's output, with where it ends in its log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub timestamp_ms: u64,
    pub text: String,
    /// Offset just past the line in its file.
    pub end: u64,
}

/// A complete event: its timestamp is its first line's; `end` is where its last line ends.
/// An empty `message` (an empty line) is never shipped but still moves the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub timestamp_ms: u64,
    pub message: String,
    pub end: u64,
}

/// Groups one output stream's lines into events.
#[derive(Debug, Clone)]
pub struct Grouper {
    start: Option<Regex>,
    pending: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    event: Event,
    last_line_ms: u64,
}

impl Grouper {
    /// Without a start pattern every line is an event.
    pub fn new(start: Option<Regex>) -> Grouper {
        Grouper {
            start,
            pending: None,
        }
    }

    /// Adds a line; returns the events it completes (at most two).
    pub fn push(&mut self, line: Line) -> Vec<Event> {
        let Some(start) = &self.start else {
            return vec![Event {
                timestamp_ms: line.timestamp_ms,
                message: line.text,
                end: line.end,
            }];
        };
        let mut out = Vec::new();
        let is_start = start.is_match(&line.text);
        if let Some(p) = &mut self.pending {
            let fits = p.event.message.len() + 1 + line.text.len() <= MAX_EVENT_BYTES;
            if !is_start && fits {
                p.event.message.push('\n');
                p.event.message.push_str(&line.text);
                p.event.end = line.end;
                p.last_line_ms = line.timestamp_ms;
                return out;
            }
            if let Some(p) = self.pending.take() {
                out.push(p.event);
            }
        }
        self.pending = Some(Pending {
            last_line_ms: line.timestamp_ms,
            event: Event {
                timestamp_ms: line.timestamp_ms,
                message: line.text,
                end: line.end,
            },
        });
        out
    }

    /// The event still open, if it is complete at `now_ms` (no line for
    /// [`FLUSH_AFTER_MS`]) or `ended` (no more output will come).
    pub fn flush(&mut self, now_ms: u64, ended: bool) -> Option<Event> {
        let due = self
            .pending
            .as_ref()
            .is_some_and(|p| ended || now_ms.saturating_sub(p.last_line_ms) >= FLUSH_AFTER_MS);
        if due {
            self.pending.take().map(|p| p.event)
        } else {
            None
        }
    }

    /// When the open event started, if one is open: nothing later may be shipped before it.
    pub fn open_since(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.event.timestamp_ms)
    }

    /// Forgets the open event (non-blocking mode dropping output).
    pub fn reset(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line(ts: u64, text: &str, end: u64) -> Line {
        Line {
            timestamp_ms: ts,
            text: text.into(),
            end,
        }
    }

    #[test]
    fn datetime_formats_convert_as_docker_does() {
        assert_eq!(
            datetime_to_regex("%Y-%m-%d"),
            r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[1,2][0-9]|3[0,1])"
        );
        assert_eq!(datetime_to_regex("100%% %Q"), "100% %Q");
        let re = Regex::new(&format!(
            "^{}",
            datetime_to_regex(r"\[%b %d, %Y %H:%M:%S\]")
        ))
        .unwrap();
        assert!(re.is_match("[May 01, 2017 19:00:01] A message was logged"));
        assert!(!re.is_match("   at com.example.Main(Main.java:3)"));
        let re = Regex::new(&format!("^{}", datetime_to_regex("%Y-%m-%dT%H:%M:%S%L%z"))).unwrap();
        assert!(re.is_match("2024-02-29T23:59:59.123+0100 boom"));
        assert!(!re.is_match("x2024-02-29T23:59:59.123+0100"));
    }

    #[test]
    fn lines_without_pattern_are_events() {
        let mut g = Grouper::new(None);
        assert_eq!(
            g.push(line(1, "a", 4)),
            vec![Event {
                timestamp_ms: 1,
                message: "a".into(),
                end: 4
            }]
        );
        assert_eq!(g.open_since(), None);
        assert_eq!(g.flush(10_000, true), None);
    }

    #[test]
    fn start_lines_group_what_follows() {
        let mut g = Grouper::new(Some(Regex::new("^INFO|^ERROR").unwrap()));
        // Lines before any start line form an event of their own.
        assert!(g.push(line(1, "preamble", 10)).is_empty());
        let out = g.push(line(2, "ERROR boom", 20));
        assert_eq!(out[0].message, "preamble");
        assert!(g.push(line(3, "  at a()", 30)).is_empty());
        assert!(g.push(line(4, "  at b()", 40)).is_empty());
        assert_eq!(g.open_since(), Some(2));
        let out = g.push(line(5, "INFO next", 50));
        assert_eq!(
            out,
            vec![Event {
                timestamp_ms: 2,
                message: "ERROR boom\n  at a()\n  at b()".into(),
                end: 40
            }]
        );
        // The open event completes after the flush delay, or when the output ends.
        assert_eq!(g.flush(5 + FLUSH_AFTER_MS - 1, false), None);
        assert_eq!(
            g.flush(5 + FLUSH_AFTER_MS, false).unwrap().message,
            "INFO next"
        );
        assert!(g.push(line(6, "INFO last", 60)).is_empty());
        assert_eq!(g.flush(6, true).unwrap().end, 60);
    }

    #[test]
    fn multiline_events_are_cut_at_the_largest_event() {
        let mut g = Grouper::new(Some(Regex::new("^START").unwrap()));
        let big = "x".repeat(100_000);
        assert!(g.push(line(1, "START", 1)).is_empty());
        assert!(g.push(line(1, &big, 2)).is_empty());
        assert!(g.push(line(1, &big, 3)).is_empty());
        let out = g.push(line(1, &big, 4));
        assert_eq!(out.len(), 1);
        assert!(out[0].message.len() <= MAX_EVENT_BYTES);
        assert_eq!(out[0].end, 3);
        assert_eq!(g.flush(1, true).unwrap().message, big);
    }
}
