//! The refresh-token rotation rules, in one place: what presenting a refresh
//! token amounts to, given where it stands in its session's chain.
//!
//! RFC 9700 §4.14.2 (refresh token rotation): every use of a refresh token
//! issues a new one and invalidates the old, which the server keeps track
//! of. When an invalidated token is presented again, the server cannot tell
//! the legitimate client from an attacker who copied it, so it revokes the
//! active token too: here, the whole session.
//!
//! One allowance on top: a token rotated less than `refresh_grace` seconds
//! ago whose successor has never been used is a race between tabs or a retry
//! whose answer was lost, not theft. It gets the same successor again, so
//! the session goes on with one chain of tokens.
//!
//! The rules hold wherever the refresh cookie is accepted: `/auth/refresh`,
//! page loads, form posts and logout.
//!
//! Pure: the store reads the token and its session, these rules decide, the
//! core writes what they decided (`Auth::present`).

use crate::store::{SessionRecord, TokenState};

/// The clock and window a decision applies, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationRules {
    pub now: i64,
    /// How long a rotated token may still be presented again as a race.
    pub grace: i64,
}

/// What presenting a refresh token calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token is current: rotate it.
    Rotate,
    /// Rotated within the grace window and its successor unused: hand the
    /// same successor out again; nothing changes.
    Replay,
    /// Rotated earlier, or its successor already used: the token was copied.
    /// Revoke the session.
    Reuse,
    /// The session has ended (revoked, idle too long, or past its absolute
    /// age): refuse, and change nothing.
    Ended,
}

/// The verdict for `token` of `session`, whose times must be exact (its
/// newest token's last use and idle expiry).
pub fn decide(token: &TokenState, session: &SessionRecord, rules: RotationRules) -> Verdict {
    if !session.is_live(rules.now) {
        return Verdict::Ended;
    }
    let Some(rotated_at) = token.rotated_at else {
        return Verdict::Rotate;
    };
    let successor_unused = token.successor_rotated_at.is_none() && token.successor_sealed.is_some();
    if successor_unused && rules.now - rotated_at <= rules.grace {
        Verdict::Replay
    } else {
        Verdict::Reuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 10_000;
    const GRACE: i64 = 10;

    fn session(revoked_at: Option<i64>, idle_expires_at: i64, expires_at: i64) -> SessionRecord {
        SessionRecord {
            revoked_at,
            idle_expires_at,
            expires_at,
            ..SessionRecord::sample()
        }
    }

    fn live() -> SessionRecord {
        session(None, NOW + 100, NOW + 1_000)
    }

    fn current() -> TokenState {
        TokenState {
            rotated_at: None,
            successor_sealed: None,
            successor_rotated_at: None,
        }
    }

    fn rotated(ago: i64, successor_used: bool) -> TokenState {
        TokenState {
            rotated_at: Some(NOW - ago),
            successor_sealed: Some("sealed".into()),
            successor_rotated_at: successor_used.then_some(NOW - 1),
        }
    }

    const RULES: RotationRules = RotationRules { now: NOW, grace: GRACE };

    #[test]
    fn verdicts() {
        use Verdict::*;
        let cases: [(&str, TokenState, SessionRecord, Verdict); 13] = [
            ("current token, live session", current(), live(), Rotate),
            (
                "current token, revoked session",
                current(),
                session(Some(NOW - 5), NOW + 100, NOW + 1_000),
                Ended,
            ),
            (
                "current token, idle until now",
                current(),
                session(None, NOW, NOW + 1_000),
                Ended,
            ),
            (
                "current token, idle a second more",
                current(),
                session(None, NOW + 1, NOW + 1_000),
                Rotate,
            ),
            (
                "current token, absolute age reached",
                current(),
                session(None, NOW + 100, NOW),
                Ended,
            ),
            ("rotated just now, successor unused", rotated(0, false), live(), Replay),
            (
                "rotated at the grace window's end",
                rotated(GRACE, false),
                live(),
                Replay,
            ),
            (
                "rotated just past the grace window",
                rotated(GRACE + 1, false),
                live(),
                Reuse,
            ),
            ("rotated within grace, successor used", rotated(1, true), live(), Reuse),
            ("rotated long ago, successor used", rotated(3_600, true), live(), Reuse),
            (
                "rotated, session revoked since",
                rotated(1, false),
                session(Some(NOW - 1), NOW + 100, NOW + 1_000),
                Ended,
            ),
            (
                "rotated long ago, session idle",
                rotated(3_600, true),
                session(None, NOW - 1, NOW + 1_000),
                Ended,
            ),
            (
                "rotated within grace, no sealed successor",
                TokenState {
                    successor_sealed: None,
                    ..rotated(1, false)
                },
                live(),
                Reuse,
            ),
        ];
        for (case, token, session, expected) in cases {
            assert_eq!(decide(&token, &session, RULES), expected, "{case}");
        }
    }

    #[test]
    fn without_a_grace_window_only_the_same_second_is_a_race() {
        let rules = RotationRules { now: NOW, grace: 0 };
        assert_eq!(decide(&rotated(0, false), &live(), rules), Verdict::Replay);
        assert_eq!(decide(&rotated(1, false), &live(), rules), Verdict::Reuse);
    }
}
