//! Authenticator-app codes (TOTP, RFC 6238, with `totp-rs`) and recovery
//! codes: the parts with no storage in them.
//!
//! The parameters are the ones every app supports: SHA-1, six digits,
//! 30-second steps, and one step of clock skew either way. `totp-rs`
//! compares codes in constant time; which step a code matched is returned so
//! the caller can refuse it the second time (RFC 6238 §5.2).

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use totp_rs::{Builder, Secret, Totp};

/// Seconds per code.
pub const STEP_SECONDS: i64 = 30;
/// Recovery codes handed out at a time.
pub const RECOVERY_CODES: usize = 10;
/// 160 bits: RFC 4226's recommended secret length for HMAC-SHA-1.
const SECRET_BYTES: usize = 20;
/// Characters of a recovery code (base32: 80 bits), shown in groups of four.
const RECOVERY_CHARS: usize = 16;
/// Lower-case RFC 4648 base32: no 0/O or 1/l/I to confuse.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// An authenticator app's shared secret.
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret as [`to_base32`](Self::to_base32) writes it.
    pub fn from_base32(text: &str) -> Option<Self> {
        Secret::try_from_base32(text).ok().map(|secret| Self(secret.as_bytes().to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// What a person types into an app that cannot scan: base32.
    pub fn to_base32(&self) -> String {
        Secret::new(self.0.clone().into_boxed_slice()).to_base32()
    }

    /// The `totp-rs` generator for this secret, labelled for apps with
    /// `issuer` and the account's name; `None` if the label cannot be used
    /// (neither may contain `:`, which usernames and the issuer setting never do).
    fn authenticator(&self, issuer: &str, account: &str) -> Option<Totp> {
        Builder::new()
            .with_secret(self.0.clone())
            .with_issuer(Some(issuer))
            .with_account_name(account)
            .build()
            .ok()
    }

    /// The `otpauth://totp/…` URI apps read from the QR code.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Option<String> {
        self.authenticator(issuer, account)?.to_url().ok()
    }

    /// The time step `code` is valid for at `now` (±1 step), if any. Spaces
    /// a person types between the digits are ignored.
    pub fn check(&self, code: &str, now: i64) -> Option<i64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = u64::try_from(now).ok()?;
        let totp = self.authenticator("x", "x")?;
        totp.check(&code, now).and_then(|step| i64::try_from(step).ok())
    }

    /// The code an app shows at `now`: for tests and the CLI.
    pub fn code_at(&self, now: i64) -> Option<String> {
        let totp = self.authenticator("x", "x")?;
        Some(totp.generate(u64::try_from(now).ok()?).to_string())
    }
}

/// `uri` drawn as a QR code, an inline SVG element (no XML declaration), so
/// the setup page shows it without JavaScript. The markup holds nothing but
/// the code's modules: the URI is in the drawing, not in any attribute.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].to_string())
}

/// What a person typed in the second step: a six-digit app code, or else a
/// recovery code.
pub enum SecondFactorCode {
    App(String),
    Recovery(String),
}

impl SecondFactorCode {
    /// `None` for something neither could be (empty, or far too long).
    pub fn parse(text: &str) -> Option<Self> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Self::App(compact));
        }
        let compact = compact.to_ascii_lowercase();
        (compact.len() == RECOVERY_CHARS && compact.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
            .then_some(Self::Recovery(compact))
    }
}

/// A fresh set of recovery codes as shown (`abcd-efgh-ijkl-mnop`), each
/// from 80 random bits.
pub fn generate_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; RECOVERY_CHARS];
            OsRng.fill_bytes(&mut bytes);
            let chars: Vec<char> = bytes
                .iter()
                .map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)]))
                .collect();
            chars.chunks(4).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// What the database keeps of a recovery code, shown or typed: SHA-256,
/// hex, of its 16 characters (80 bits: a fast hash is enough, and lookups
/// by hash need no constant-time compare).
pub fn recovery_code_hash(code: &str) -> String {
    let compact: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::new_with_prefix(b"gatehouse/recovery-code/v1\0").chain_update(compact).finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret and vectors (eight digits there;
    /// the last six here).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_rfc_6238() {
        let secret = TotpSecret::from_bytes(RFC_SECRET.to_vec());
        assert_eq!(secret.code_at(59).as_deref(), Some("287082"));
        assert_eq!(secret.code_at(1_111_111_109).as_deref(), Some("081804"));
        assert_eq!(secret.code_at(1_234_567_890).as_deref(), Some("005924"));
    }

    #[test]
    fn a_code_is_valid_one_step_either_side_and_no_further() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_015;
        let code = secret.code_at(now).unwrap();
        let step = now / STEP_SECONDS;
        assert_eq!(secret.check(&code, now), Some(step));
        assert_eq!(secret.check(&code, now - STEP_SECONDS), Some(step), "the app's clock is ahead");
        assert_eq!(secret.check(&code, now + STEP_SECONDS), Some(step), "the app's clock is behind");
        assert_eq!(secret.check(&code, now + 2 * STEP_SECONDS), None);
        assert_eq!(secret.check(&code, now - 2 * STEP_SECONDS), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(secret.check(&spaced, now), Some(step));
        assert_eq!(secret.check("12345", now), None);
        assert_eq!(secret.check("abcdef", now), None);
    }

    #[test]
    fn the_uri_names_the_issuer_and_account_and_carries_the_secret() {
        let secret = TotpSecret::generate();
        let uri = secret.otpauth_uri("Gatehouse", "alice").unwrap();
        assert!(uri.starts_with("otpauth://totp/Gatehouse:alice?"), "{uri}");
        assert!(uri.contains(&format!("secret={}", secret.to_base32())), "{uri}");
        assert!(uri.contains("issuer=Gatehouse"), "{uri}");
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("otpauth"), "the URI is drawn, not written");
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_back_however_typed() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        let typed = code.replace('-', " ").to_uppercase();
        assert!(matches!(SecondFactorCode::parse(&typed), Some(SecondFactorCode::Recovery(_))));
        assert_eq!(recovery_code_hash(&typed), recovery_code_hash(code));
        assert!(matches!(SecondFactorCode::parse("123 456"), Some(SecondFactorCode::App(c)) if c == "123456"));
        assert!(SecondFactorCode::parse("").is_none());
        assert!(SecondFactorCode::parse("not a code at all").is_none());
    }
}
