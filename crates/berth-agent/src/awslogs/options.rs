//! The awslogs driver's options, as a container definition's `logConfiguration.options`
//! gives them, checked the way Docker's awslogs driver checks them when a container starts
//! (a bad option fails the start with `failed to initialize logging driver: …`).

use std::collections::BTreeMap;

use regex::Regex;

use super::multiline;

/// How the container's output reaches CloudWatch Logs when the driver falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing is dropped: the container's log files on disk hold everything not yet shipped.
    Blocking,
    /// At most `max-buffer-size` bytes per output stream wait to be shipped; older unshipped
    /// output beyond that is dropped.
    NonBlocking,
}

/// Docker's default `max-buffer-size` (1 MiB).
pub const DEFAULT_MAX_BUFFER_BYTES: u64 = 1 << 20;

/// The options of one container's awslogs driver.
#[derive(Debug, Clone)]
pub struct AwslogsOptions {
    pub group: String,
    pub region: String,
    pub stream: String,
    pub create_group: bool,
    pub mode: Mode,
    pub max_buffer_bytes: u64,
    /// The start of a multiline event (`^` + pattern, or the converted datetime format).
    pub multiline_start: Option<Regex>,
}

/// The stream a container's output goes to, as ECS names it: `prefix/container-name/task-id`
/// with `awslogs-stream-prefix`, else (as Docker does) the container's id.
pub fn stream_name(
    prefix: Option<&str>,
    container_name: &str,
    task_id: &str,
    container_id: &str,
) -> String {
    match prefix {
        Some(p) if !p.is_empty() => format!("{p}/{container_name}/{task_id}"),
        _ => container_id.to_string(),
    }
}

/// Parses a Docker size (`25m`, `1g`, `512k`, `4096`, `1.5m`; binary units as Docker's
/// `units.RAMInBytes`).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    Some((n * mult as f64) as u64)
}

/// Checks a container's awslogs options. `default_region` is the task's region (used when
/// `awslogs-region` is absent). The error is the reason Docker gives.
pub fn parse(
    options: &BTreeMap<String, String>,
    default_region: &str,
    container_name: &str,
    task_id: &str,
    container_id: &str,
) -> Result<AwslogsOptions, String> {
    const KNOWN: &[&str] = &[
        "awslogs-group",
        "awslogs-region",
        "awslogs-stream-prefix",
        "awslogs-stream",
        "awslogs-create-group",
        "awslogs-datetime-format",
        "awslogs-multiline-pattern",
        "awslogs-endpoint",
        "awslogs-credentials-endpoint",
        "awslogs-force-flush-interval-seconds",
        "awslogs-max-buffered-events",
        "awslogs-format",
        "mode",
        "max-buffer-size",
        "tag",
    ];
    if let Some(k) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown log opt '{k}' for awslogs log driver"));
    }
    let group = options
        .get("awslogs-group")
        .filter(|g| !g.is_empty())
        .ok_or("must specify a value for log opt 'awslogs-group'")?
        .clone();
    let region = options
        .get("awslogs-region")
        .filter(|r| !r.is_empty())
        .cloned()
        .unwrap_or_else(|| default_region.to_string());
    let stream = match options.get("awslogs-stream").filter(|s| !s.is_empty()) {
        Some(s) => s.clone(),
        None => stream_name(
            options.get("awslogs-stream-prefix").map(String::as_str),
            container_name,
            task_id,
            container_id,
        ),
    };
    let create_group = match options.get("awslogs-create-group").map(String::as_str) {
        None => false,
        Some(v) => v.parse::<bool>().map_err(|_| {
            format!("invalid value for log opt 'awslogs-create-group': {v} is not a boolean")
        })?,
    };
    let mode = match options.get("mode").map(String::as_str) {
        None | Some("") | Some("blocking") => Mode::Blocking,
        Some("non-blocking") => Mode::NonBlocking,
        Some(m) => return Err(format!("logger: logging mode not supported: {m}")),
    };
    let max_buffer_bytes = match options.get("max-buffer-size") {
        None => DEFAULT_MAX_BUFFER_BYTES,
        Some(_) if mode == Mode::Blocking => {
            return Err(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'".into(),
            );
        }
        Some(v) => {
            parse_size(v).ok_or_else(|| format!("logger: could not parse max-buffer-size: {v}"))?
        }
    };
    let datetime = options
        .get("awslogs-datetime-format")
        .filter(|v| !v.is_empty());
    let pattern = options
        .get("awslogs-multiline-pattern")
        .filter(|v| !v.is_empty());
    let multiline_start = match (datetime, pattern) {
        (Some(_), Some(_)) => {
            return Err("you cannot configure log opt 'awslogs-datetime-format' and 'awslogs-multiline-pattern' at the same time".into());
        }
        (Some(f), None) => Some(
            Regex::new(&format!("^{}", multiline::datetime_to_regex(f)))
                .map_err(|e| format!("awslogs could not parse awslogs-datetime-format: {e}"))?,
        ),
        (None, Some(p)) => Some(
            Regex::new(&format!("^{p}"))
                .map_err(|e| format!("awslogs could not parse awslogs-multiline-pattern: {e}"))?,
        ),
        (None, None) => None,
    };
    Ok(AwslogsOptions {
        group,
        region,
        stream,
        create_group,
        mode,
        max_buffer_bytes,
        multiline_start,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse_ok(pairs: &[(&str, &str)]) -> AwslogsOptions {
        parse(&opts(pairs), "us-east-1", "web", "abc123", "abc123-web").unwrap()
    }

    #[test]
    fn stream_names_follow_ecs() {
        let o = parse_ok(&[("awslogs-group", "g"), ("awslogs-stream-prefix", "ecs")]);
        assert_eq!(o.stream, "ecs/web/abc123");
        let o = parse_ok(&[("awslogs-group", "g")]);
        assert_eq!(o.stream, "abc123-web");
        assert_eq!(o.region, "us-east-1");
        assert_eq!(o.mode, Mode::Blocking);
        assert!(!o.create_group);
        let o = parse_ok(&[
            ("awslogs-group", "g"),
            ("awslogs-region", "eu-west-1"),
            ("awslogs-create-group", "true"),
            ("mode", "non-blocking"),
            ("max-buffer-size", "25m"),
        ]);
        assert_eq!(
            (
                o.region.as_str(),
                o.create_group,
                o.mode,
                o.max_buffer_bytes
            ),
            ("eu-west-1", true, Mode::NonBlocking, 25 << 20)
        );
    }

    #[test]
    fn bad_options_say_what_docker_says() {
        let err =
            |pairs: &[(&str, &str)]| parse(&opts(pairs), "us-east-1", "web", "t", "c").unwrap_err();
        assert!(err(&[]).contains("awslogs-group"));
        assert!(err(&[("awslogs-group", "g"), ("mode", "fast")]).contains("mode not supported"));
        assert!(err(&[("awslogs-group", "g"), ("max-buffer-size", "1m")]).contains("non-blocking"));
        assert!(
            err(&[
                ("awslogs-group", "g"),
                ("mode", "non-blocking"),
                ("max-buffer-size", "x")
            ])
            .contains("max-buffer-size")
        );
        assert!(
            err(&[
                ("awslogs-group", "g"),
                ("awslogs-datetime-format", "%Y"),
                ("awslogs-multiline-pattern", "x")
            ])
            .contains("at the same time")
        );
        assert!(
            err(&[("awslogs-group", "g"), ("awslogs-multiline-pattern", "(")]).contains("parse")
        );
        assert!(err(&[("awslogs-group", "g"), ("colour", "red")]).contains("unknown log opt"));
    }

    #[test]
    fn sizes_parse_as_docker_does() {
        assert_eq!(parse_size("25m"), Some(25 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1.5MB"), Some(3 << 19));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size("-1m"), None);
        assert_eq!(parse_size("m"), None);
    }
}
