//! Fleet mode's config-change events: after every config version a replica writes (set,
//! apply, rollback) it publishes `{"v": 1, "agent_type", "version"}` on
//! `<nats_prefix>.events.config.<AGENT>`; every replica listens on
//! `<nats_prefix>.events.config.*` and picks the change up at once ([`HyperSync::refresh`])
//! instead of at its next `config_poll_ms` poll.
//!
//! The events are plain NATS messages, a notice and not the truth: the store is. A replica that
//! misses one (it was down, NATS was) still gets the version from its start-up refresh or its
//! next poll, which keep running in fleet mode.

use crate::hypersync::HyperSync;
use futures_util::StreamExt;
use std::sync::Arc;

/// The event subject of `agent_type`.
pub fn subject(prefix: &str, agent_type: &str) -> String {
    format!("{prefix}.events.config.{agent_type}")
}

/// Publishes this process's config writes and applies the other replicas' ones, until the
/// returned task is aborted.
pub async fn start(
    hypersync: Arc<HyperSync>,
    client: async_nats::Client,
    prefix: &str,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut events = client
        .subscribe(format!("{prefix}.events.config.*"))
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to config events: {e}"))?;
    let publisher = client.clone();
    let prefix = prefix.to_string();
    hypersync.on_write(Box::new(move |row| {
        let client = publisher.clone();
        let subject = subject(&prefix, &row.agent_type);
        let payload = serde_json::json!({
            "v": 1, "agent_type": row.agent_type, "version": row.version,
        })
        .to_string();
        tokio::spawn(async move {
            if let Err(err) = client.publish(subject, payload.into_bytes().into()).await {
                tracing::warn!(error = %err, "publishing a config event failed; replicas poll");
            }
        });
    }));
    Ok(tokio::spawn(async move {
        while let Some(message) = events.next().await {
            let event: serde_json::Value = match serde_json::from_slice(&message.payload) {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(subject = %message.subject, error = %err, "ignoring a malformed config event");
                    metrics::counter!("tars_events_refused_total", "reason" => "malformed")
                        .increment(1);
                    continue;
                }
            };
            // Our own writes (and versions already served) need no refresh.
            let served = event["agent_type"]
                .as_str()
                .and_then(|agent| hypersync.live().snapshot(agent))
                .map(|snapshot| i64::from(snapshot.config.version));
            if served.is_some() && served >= event["version"].as_i64() {
                continue;
            }
            if let Err(err) = hypersync.refresh().await {
                tracing::warn!(error = %err.message, "applying a config event failed; the poll retries");
            }
        }
    }))
}
