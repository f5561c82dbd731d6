//! The password rule, shared so the browser's strength meter and the server
//! refuse exactly the same passwords.

/// zxcvbn scores 0 to 4; anything below this is refused.
pub const MIN_SCORE: u8 = 3;
/// Longer passwords are refused before any hashing work.
pub const MAX_CHARS: usize = 256;

/// The outcome of checking a password: its score and, if refused, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strength {
    pub score: u8,
    pub reasons: Vec<String>,
}

impl Strength {
    pub fn acceptable(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Rates `password`, treating `user_inputs` (such as the username) as known
/// to an attacker.
pub fn check(password: &str, user_inputs: &[&str]) -> Strength {
    if password.is_empty() {
        return Strength {
            score: 0,
            reasons: vec!["Enter a password.".to_string()],
        };
    }
    if password.chars().count() > MAX_CHARS {
        return Strength {
            score: 0,
            reasons: vec![format!("Use at most {MAX_CHARS} characters.")],
        };
    }
    let entropy = zxcvbn::zxcvbn(password, user_inputs);
    let score = u8::from(entropy.score());
    let mut reasons = Vec::new();
    if score < MIN_SCORE {
        if let Some(feedback) = entropy.feedback() {
            if let Some(warning) = feedback.warning() {
                reasons.push(warning.to_string());
            }
            reasons.extend(feedback.suggestions().iter().map(|s| s.to_string()));
        }
        if reasons.is_empty() {
            reasons.push("This password is too easy to guess.".to_string());
        }
    }
    Strength { score, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_reasons() {
        for weak in ["password", "12345678", "alice2024", "qwertyuiop"] {
            let strength = check(weak, &["alice"]);
            assert!(!strength.acceptable(), "{weak} accepted");
            assert!(!strength.reasons.is_empty());
        }
    }

    #[test]
    fn strong_passwords_pass() {
        let strength = check("correct horse battery staple 42!", &["alice"]);
        assert!(strength.acceptable(), "{:?}", strength);
        assert!(strength.score >= MIN_SCORE);
    }

    #[test]
    fn the_username_counts_against_the_password() {
        let alone = check("Zebulon-Quartzfield", &[]);
        let known = check("Zebulon-Quartzfield", &["Zebulon-Quartzfield"]);
        assert!(known.score < alone.score);
    }

    #[test]
    fn overlong_passwords_are_refused_before_rating() {
        let long = "x".repeat(MAX_CHARS + 1);
        assert!(!check(&long, &[]).acceptable());
    }
}
