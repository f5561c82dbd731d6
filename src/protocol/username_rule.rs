//! Username rule: 3 to 32 ASCII letters, digits, `.`, `_` or `-`.

pub const MIN_CHARS: usize = 3;
pub const MAX_CHARS: usize = 32;

/// Returns why `username` is not acceptable, if it is not.
pub fn problem(username: &str) -> Option<String> {
    let count = username.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&count) {
        return Some(format!("A username has {MIN_CHARS} to {MAX_CHARS} characters."));
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        // ASCII only: no look-alike names ("аlice" in Cyrillic), no invisible characters.
        return Some("A username uses only the letters a-z, digits, '.', '_' and '-'.".to_string());
    }
    None
}

/// The form two usernames are compared in: "Alice" and "alice" are one name.
pub fn key(username: &str) -> String {
    username.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        assert!(problem("alice").is_none());
        assert!(problem("Zoe_o-k.1").is_none());
        // Look-alikes of ASCII names are not names.
        assert!(problem("Zoë").is_some());
        assert!(problem("\u{430}lice").is_some());
        assert!(problem("ａｌｉｃｅ").is_some());
        assert!(problem("al").is_some());
        assert!(problem("a\0lice").is_some());
        assert!(problem("al ice").is_some());
        assert!(problem("\u{202e}alice").is_some());
        assert!(problem(&"a".repeat(33)).is_some());
        assert_eq!(key("Alice"), "alice");
    }
}
