//! Mail delivery: the outbox worker. The core queues mails in the database
//! (`store::mail`), each in the transaction that made its token; this worker
//! claims the due ones, sends them through SMTP with lettre (or, with no SMTP
//! server configured, writes each to a file for a developer to open), and
//! retries a failed send with a growing delay until the mail's link expires.
//! A claim holds a mail for [`CLAIM_SECONDS`]: on PostgreSQL instances skip
//! each other's claims, so each mail goes out once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::auth::{Auth, WithSources};
use crate::store::OutboxMail;

/// How long a claimed mail is this worker's before another may take it: well
/// beyond one SMTP conversation's timeouts.
const CLAIM_SECONDS: i64 = 120;
/// Mails claimed at once.
const BATCH: i64 = 10;
/// How often the outbox is looked at when nothing wakes the worker: mails
/// queued by other instances, and retries that come due.
const POLL: Duration = Duration::from_secs(1);
/// One SMTP conversation's limit, so a server that stops answering cannot
/// hold the worker.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest wait between two tries of one mail.
const MAX_RETRY_SECONDS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("GATEHOUSE_SMTP_URL is not a usable SMTP URL")]
    SmtpUrl(#[source] lettre::transport::smtp::Error),
    #[error("GATEHOUSE_MAIL_FROM is not an address")]
    From(#[source] lettre::address::AddressError),
    #[error("the recipient is not an address")]
    Recipient(#[source] lettre::address::AddressError),
    #[error("the mail could not be built")]
    Build(#[source] lettre::error::Error),
    #[error("the SMTP server did not take the mail")]
    Smtp(#[source] lettre::transport::smtp::Error),
    #[error("the mail could not be written to {path}")]
    Write { path: String, source: std::io::Error },
}

impl MailError {
    /// Whether trying again later cannot help.
    fn is_permanent(&self) -> bool {
        match self {
            Self::Smtp(err) => err.is_permanent(),
            Self::Recipient(_) | Self::Build(_) | Self::From(_) => true,
            Self::SmtpUrl(_) | Self::Write { .. } => false,
        }
    }
}

/// Where mails go.
pub enum Delivery {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// No SMTP server: a `.eml` file per mail in this directory.
    Folder(PathBuf),
}

impl Delivery {
    /// The delivery the settings ask for: SMTP when `smtp_url` is set.
    pub fn configured(auth: &Auth) -> Result<Self, MailError> {
        let settings = auth.settings();
        if settings.smtp_url.is_empty() {
            return Ok(Self::Folder(PathBuf::from(&settings.mail_dir)));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
            .map_err(MailError::SmtpUrl)?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self::Smtp(transport))
    }

    async fn send(&self, from: &Mailbox, mail: &OutboxMail) -> Result<(), MailError> {
        let to: Mailbox = mail.recipient.parse().map_err(MailError::Recipient)?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .date(UNIX_EPOCH + Duration::from_secs(u64::try_from(mail.created_at).unwrap_or(0)))
            .multipart(MultiPart::alternative_plain_html(mail.text_body.clone(), mail.html_body.clone()))
            .map_err(MailError::Build)?;
        match self {
            Self::Smtp(transport) => transport.send(message).await.map(drop).map_err(MailError::Smtp),
            Self::Folder(dir) => {
                let path = dir.join(format!("{}-{}.eml", mail.created_at, mail.id));
                let written = async {
                    tokio::fs::create_dir_all(dir).await?;
                    tokio::fs::write(&path, message.formatted()).await
                };
                written.await.map_err(|source| MailError::Write {
                    path: path.display().to_string(),
                    source,
                })?;
                tracing::info!(to = %mail.recipient, subject = %mail.subject, file = %path.display(), "mail written (no SMTP server configured)");
                Ok(())
            }
        }
    }
}

/// Starts this instance's outbox worker, after checking the mail settings.
pub fn spawn_outbox(auth: &Arc<Auth>) -> Result<tokio::task::JoinHandle<()>, MailError> {
    let delivery = Delivery::configured(auth)?;
    let from: Mailbox = auth.settings().mail_from.parse().map_err(MailError::From)?;
    let auth = Arc::clone(auth);
    Ok(tokio::spawn(async move {
        let woken = auth.mail_queued();
        loop {
            let now = auth.now();
            match auth.store().claim_mails(now, now + CLAIM_SECONDS, BATCH).await {
                Ok(mails) if !mails.is_empty() => {
                    for mail in mails {
                        deliver(&auth, &delivery, &from, mail).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %WithSources(&err), "the outbox could not be read"),
            }
            tokio::select! {
                () = woken.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }))
}

/// Sends one claimed mail and records how it went.
async fn deliver(auth: &Auth, delivery: &Delivery, from: &Mailbox, mail: OutboxMail) {
    let store = auth.store();
    // A refusal: why, and whether trying again could help.
    let outcome = if mail.expires_at <= auth.now() {
        Err(("its link expired before it could be sent".to_string(), false))
    } else {
        delivery.send(from, &mail).await.inspect(|()| crate::metrics::mail_sent()).map_err(|err| {
            let retry = !err.is_permanent();
            tracing::warn!(error = %WithSources(&err), to = %mail.recipient, attempt = mail.attempts, retry, "a mail was not sent");
            (WithSources(&err).to_string(), retry)
        })
    };
    let now = auth.now();
    let recorded = match outcome {
        Ok(()) => store.mail_sent(&mail.id, now).await,
        Err((reason, retry)) => {
            let retry_at = now + retry_delay(mail.attempts);
            let retry = (retry && retry_at < mail.expires_at).then_some(retry_at);
            crate::metrics::mail_failed(retry.is_some());
            if retry.is_none() {
                tracing::error!(to = %mail.recipient, subject = %mail.subject, %reason, "a mail was given up");
            }
            store.mail_not_sent(&mail.id, &reason, retry, now).await
        }
    };
    if let Err(err) = recorded {
        // The claim runs out and the mail is tried again: sent twice at worst.
        tracing::warn!(error = %WithSources(&err), "the outcome of a mail could not be recorded");
    }
}

/// Seconds before the next try after `attempts` tries: 2, 4, 8 … at most
/// [`MAX_RETRY_SECONDS`].
fn retry_delay(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    (2_i64 << doublings).min(MAX_RETRY_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_five_minutes() {
        let delays: Vec<i64> = (1..=10).map(retry_delay).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(retry_delay(0), 2);
        assert_eq!(retry_delay(i64::MAX), 300);
    }
}
