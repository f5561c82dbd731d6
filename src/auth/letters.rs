//! The mails Gatehouse sends: what they say, in plain text and HTML. Each says
//! what was asked for, when and from where, and what to do if it was not you.

use super::ClientInfo;
use crate::app::time_text;
use crate::store::OutboxMail;

/// The product's name, as mails sign with it.
const PRODUCT: &str = "Gatehouse";

/// A mail to queue: to whom, about what, and its paragraphs, in order. A
/// paragraph that is a link is shown as one.
pub(super) struct Letter {
    pub to: String,
    pub subject: String,
    pub paragraphs: Vec<Paragraph>,
}

pub(super) enum Paragraph {
    Text(String),
    Link(String),
}

impl Letter {
    /// The letter as an outbox row made at `now`, worth sending until `expires_at`.
    pub fn into_outbox(self, now: i64, expires_at: i64) -> OutboxMail {
        let text = self
            .paragraphs
            .iter()
            .map(|p| match p {
                Paragraph::Text(text) | Paragraph::Link(text) => text.as_str(),
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let html_paragraphs: String = self
            .paragraphs
            .iter()
            .map(|p| match p {
                Paragraph::Text(text) => format!("<p>{}</p>\n", escape(text)),
                Paragraph::Link(url) => format!("<p><a href=\"{0}\">{0}</a></p>\n", escape(url)),
            })
            .collect();
        OutboxMail {
            id: uuid::Uuid::now_v7().to_string(),
            recipient: self.to,
            html_body: format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{html_paragraphs}</body></html>\n",
                escape(&self.subject)
            ),
            subject: self.subject,
            text_body: format!("{text}\n\n-- \n{PRODUCT}\n"),
            created_at: now,
            expires_at,
            attempts: 0,
        }
    }
}

/// Where and what a request came from, as a mail tells it: the client's
/// address and browser, roughly.
fn origin(client: &ClientInfo) -> String {
    let address = client.ip.as_deref().unwrap_or("an unknown address");
    match client.user_agent.as_deref() {
        Some(agent) => format!("{address} ({})", agent.chars().take(80).collect::<String>()),
        None => address.to_string(),
    }
}

fn when_and_where(now: i64, client: &ClientInfo) -> String {
    format!("This was asked for on {} from {}.", time_text(now), origin(client))
}

pub(super) fn password_reset(to: &str, username: &str, link: String, minutes: i64, now: i64, client: &ClientInfo) -> Letter {
    Letter {
        to: to.to_string(),
        subject: format!("Reset your {PRODUCT} password"),
        paragraphs: vec![
            Paragraph::Text(format!("Someone asked to reset the password of the {PRODUCT} account \"{username}\".")),
            Paragraph::Text(format!("To choose a new password, open this link within {minutes} minutes. It works once:")),
            Paragraph::Link(link),
            Paragraph::Text(when_and_where(now, client)),
            Paragraph::Text(
                "If it was not you, ignore this mail: your password stays as it is. If it keeps happening, \
                 change your password and look at your sessions."
                    .to_string(),
            ),
        ],
    }
}

pub(super) fn verification(to: &str, username: &str, link: String, hours: i64, now: i64, client: &ClientInfo) -> Letter {
    Letter {
        to: to.to_string(),
        subject: format!("Confirm your e-mail address for {PRODUCT}"),
        paragraphs: vec![
            Paragraph::Text(format!("Someone asked to use this address for the {PRODUCT} account \"{username}\".")),
            Paragraph::Text(format!("To confirm it, open this link within {hours} hours and press the button there:")),
            Paragraph::Link(link),
            Paragraph::Text(when_and_where(now, client)),
            Paragraph::Text("If it was not you, ignore this mail: the address will not be used.".to_string()),
        ],
    }
}

/// To the verified address, when another one is asked for in its place.
pub(super) fn change_asked(to: &str, username: &str, new_address: &str, now: i64, client: &ClientInfo) -> Letter {
    Letter {
        to: to.to_string(),
        subject: format!("Your {PRODUCT} e-mail address is about to change"),
        paragraphs: vec![
            Paragraph::Text(format!(
                "Someone asked to change the address of the {PRODUCT} account \"{username}\" from this one to {new_address}. \
                 This address stays in use until the new one is confirmed."
            )),
            Paragraph::Text(when_and_where(now, client)),
            Paragraph::Text(
                "If it was not you, someone may be logged in as you: change your password, which signs out \
                 every other session, and look at your sessions."
                    .to_string(),
            ),
        ],
    }
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_has_both_parts_with_the_link_and_escapes_html() {
        let client = ClientInfo {
            ip: Some("203.0.113.9".into()),
            user_agent: Some("<script>".into()),
        };
        let mail = password_reset("a@example.com", "ada", "https://x/reset-password?token=T".into(), 30, 0, &client)
            .into_outbox(0, 1800);
        assert!(mail.text_body.contains("https://x/reset-password?token=T"));
        assert!(mail.text_body.contains("1970-01-01 00:00 UTC") && mail.text_body.contains("203.0.113.9"));
        assert!(mail.html_body.contains(r#"<a href="https://x/reset-password?token=T">"#));
        assert!(mail.html_body.contains("&lt;script&gt;") && !mail.html_body.contains("<script>"));
        assert!(mail.text_body.contains("If it was not you"));
    }
}
