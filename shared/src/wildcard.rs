//! `*` wildcards, as ECR tag filters and `trail-for --allowed-principal` patterns use them.

/// True when `text` matches `pattern`: `*` matches any run of characters (also none),
/// everything else matches itself.
pub fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_match_any_run() {
        assert!(matches("a*c", "abbbc"));
        assert!(matches("a*b*c", "aXbYc"));
        assert!(!matches("a*b*c", "aXcYb"));
        assert!(matches("*", ""));
        assert!(matches("sha256-*.sig", "sha256-ab.sig"));
        assert!(!matches("sha256-*.sig", "sha256-ab.att"));
        assert!(matches(
            "repo:o/*:ref:refs/heads/main",
            "repo:o/x:ref:refs/heads/main"
        ));
        assert!(!matches(
            "repo:o/*:ref:refs/heads/main",
            "repo:o/x:ref:refs/heads/dev"
        ));
    }

    #[test]
    fn prefix_and_suffix_do_not_overlap() {
        assert!(!matches("ab*ba", "aba"));
        assert!(matches("ab*ba", "abba"));
    }

    #[test]
    fn no_star_is_equality() {
        assert!(matches("v1", "v1"));
        assert!(!matches("v1", "v10"));
    }
}
