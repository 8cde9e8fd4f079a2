//! Names of ECS resources and the rules AWS applies to them.

/// Letters, digits, hyphens and underscores, 1 to `max` characters: the rule for cluster
/// names, task definition families, container names and capacity provider names.
pub fn is_simple_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A cluster name (1–255 letters, digits, hyphens, underscores).
pub fn is_cluster_name(s: &str) -> bool {
    is_simple_name(s, 255)
}

/// A task definition family (1–255 letters, digits, hyphens, underscores).
pub fn is_family(s: &str) -> bool {
    is_simple_name(s, 255)
}

/// A random 32-hex-digit id, as ECS uses for tasks and container instances.
pub fn hex_id(random: u128) -> String {
    format!("{random:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_names() {
        assert!(is_cluster_name("my_cluster-1"));
        assert!(!is_cluster_name(""));
        assert!(!is_cluster_name("a b"));
        assert!(!is_cluster_name(&"a".repeat(256)));
        assert!(is_cluster_name(&"a".repeat(255)));
    }
}
