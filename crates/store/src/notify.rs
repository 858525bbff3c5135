//! Cross-process wake-ups on PostgreSQL: every append transaction sends
//! `NOTIFY` with its head sequence (delivered at commit), and each process
//! LISTENs, so followers on every replica wake at once instead of waiting
//! for the safety poll.

use std::sync::Weak;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

/// The channel appenders notify.
pub(crate) const CHANNEL: &str = "artifactstore_events";

/// Listens on [`CHANNEL`] and moves `head` forward, reconnecting after
/// errors, until the store that owns `head` is gone.
pub(crate) fn spawn_listener(url: String, head: Weak<watch::Sender<i64>>) {
    tokio::spawn(async move {
        loop {
            if head.strong_count() == 0 {
                return;
            }
            let mut listener = match PgListener::connect(&url).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "event notifications unavailable; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            loop {
                match tokio::time::timeout(Duration::from_secs(30), listener.recv()).await {
                    Ok(Ok(notification)) => {
                        let Some(sender) = head.upgrade() else { return };
                        if let Ok(sequence) = notification.payload().parse::<i64>() {
                            sender.send_if_modified(|current| {
                                let newer = sequence > *current;
                                if newer {
                                    *current = sequence;
                                }
                                newer
                            });
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "event notification connection lost; reconnecting");
                        break;
                    }
                    Err(_) if head.strong_count() == 0 => return,
                    Err(_) => {}
                }
            }
        }
    });
}
