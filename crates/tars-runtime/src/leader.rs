//! Leader election for singleton duties (the job reaper, the engines' schedulers, baseline
//! staleness checks): exactly one process of the fleet runs each, and a deposed leader's late
//! writes are refused.
//!
//! A [`Campaign`] runs per duty and per process: while it is not the leader it asks its
//! [`Elector`] to take the duty every `retry_every` (1 s); once leader it renews every
//! `renew_every` (1 s) and steps down *at once* when a renewal fails or times out (the
//! connection that held the lock is gone, so another process may lead already), then waits
//! [`DEPOSED_BACKOFF`] × `retry_every` before campaigning again, so a healthy candidate takes
//! over first. Duties watch
//! the [`Leadership`] handle: `subscribe()` gives a `watch::Receiver<bool>`, `fence()` the
//! (duty, epoch) their writes name so the store can refuse them when the epoch moved on.
//!
//! The elector of T.A.R.S. is `tars_store::LeaderSession`: in fleet mode a PostgreSQL
//! session-level advisory lock on a dedicated connection plus an epoch bumped in
//! `leader_epochs` (a dead leader's session closes, its lock is released, and the next candidate
//! leads within `retry_every` with a higher epoch); in embedded mode (SQLite) the single process
//! is the leader of every duty. The layering: the SQL lives in `tars-store`, this loop here.
//!
//! Exported as the gauges `tars_leader{duty}` (1 while this process leads) and
//! `tars_leader_epoch{duty}` (the epoch it leads under, 0 when not leading).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A boxed future, for the object-safe [`Elector`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// An elector's failure (the database unreachable, the lock lost, a stale epoch).
pub type ElectorError = Box<dyn std::error::Error + Send + Sync>;

/// Takes, holds and gives up one duty.
pub trait Elector: Send + 'static {
    fn duty(&self) -> &str;
    /// `Some(epoch)` when this candidate now leads (the epoch is new and higher than any
    /// before), `None` when another does.
    fn try_acquire(&mut self) -> BoxFuture<'_, Result<Option<i64>, ElectorError>>;
    /// Still the leader under `epoch`? An error means no (or not sure): step down.
    fn renew(&mut self, epoch: i64) -> BoxFuture<'_, Result<(), ElectorError>>;
    /// Gives the duty up.
    fn resign(&mut self) -> BoxFuture<'_, ()>;
}

impl Elector for tars_store::LeaderSession {
    fn duty(&self) -> &str {
        tars_store::LeaderSession::duty(self)
    }

    fn try_acquire(&mut self) -> BoxFuture<'_, Result<Option<i64>, ElectorError>> {
        Box::pin(async move { Ok(tars_store::LeaderSession::try_acquire(self).await?) })
    }

    fn renew(&mut self, epoch: i64) -> BoxFuture<'_, Result<(), ElectorError>> {
        Box::pin(async move { Ok(tars_store::LeaderSession::renew(self, epoch).await?) })
    }

    fn resign(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tars_store::LeaderSession::resign(self))
    }
}

/// A candidate that just lost the duty waits this many `retry_every` before campaigning again.
pub const DEPOSED_BACKOFF: u32 = 3;

/// How often a campaign tries and renews.
#[derive(Debug, Clone, PartialEq)]
pub struct ElectionConfig {
    /// Between attempts to take the duty while another process leads (or the database is
    /// unreachable). A new leader appears at most this long after the old one's session ended.
    pub retry_every: Duration,
    /// Between renewals while leading.
    pub renew_every: Duration,
    /// A renewal or attempt that takes longer counts as failed (a partitioned connection).
    pub timeout: Duration,
}

impl Default for ElectionConfig {
    fn default() -> ElectionConfig {
        ElectionConfig {
            retry_every: Duration::from_secs(1),
            renew_every: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
        }
    }
}

/// What duties look at: whether this process leads the duty now, and under which epoch.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Leadership {
    duty: Arc<str>,
    leader: watch::Receiver<bool>,
    epoch: watch::Receiver<Option<i64>>,
}

/// The (duty, epoch) a leader's writes name; see `tars_store::Fence`.
pub type Fence = tars_store::Fence;

impl Leadership {
    pub fn duty(&self) -> &str {
        &self.duty
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The epoch this process leads under; `None` while it does not lead.
    pub fn epoch(&self) -> Option<i64> {
        *self.epoch.borrow()
    }

    /// What a fenced write names; `None` while this process does not lead.
    pub fn fence(&self) -> Option<Fence> {
        self.epoch().map(|epoch| Fence {
            duty: self.duty.to_string(),
            epoch,
        })
    }

    /// `true` while this process leads; changes when it takes or loses the duty.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Waits until this process leads; returns the epoch, or `None` when the campaign ended.
    pub async fn until_leader(&self) -> Option<i64> {
        let mut epoch = self.epoch.clone();
        let leading = epoch.wait_for(Option::is_some).await.ok()?;
        *leading
    }

    /// Waits until this process stops leading (or the campaign ends).
    pub async fn until_deposed(&self) {
        let mut leader = self.leader.clone();
        let _ = leader.wait_for(|leader| !*leader).await;
    }
}

/// One process's candidacy for one duty; stopped (and the duty resigned) by [`Campaign::stop`]
/// or when dropped.
pub struct Campaign {
    leadership: Leadership,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Campaign {
    /// Starts campaigning for the elector's duty.
    pub fn start(elector: impl Elector, config: ElectionConfig) -> Campaign {
        let duty: Arc<str> = elector.duty().into();
        let (leader_tx, leader) = watch::channel(false);
        let (epoch_tx, epoch) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(false);
        set_gauges(&duty, None);
        let task = tokio::spawn(campaign(
            elector,
            config,
            Term {
                duty: duty.clone(),
                leader: leader_tx,
                epoch: epoch_tx,
            },
            stop_rx,
        ));
        Campaign {
            leadership: Leadership {
                duty,
                leader,
                epoch,
            },
            stop,
            task: Some(task),
        }
    }

    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Stops campaigning; a leader resigns (releases the lock) before this returns.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Campaign {
    fn drop(&mut self) {
        // Dropping the elector closes its connection, which releases the lock.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The campaign's side of the channels.
struct Term {
    duty: Arc<str>,
    leader: watch::Sender<bool>,
    epoch: watch::Sender<Option<i64>>,
}

impl Term {
    fn set(&self, epoch: Option<i64>) {
        self.epoch.send_replace(epoch);
        self.leader.send_replace(epoch.is_some());
        set_gauges(&self.duty, epoch);
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        // The campaign ended (stopped or aborted): this process leads nothing any more.
        self.set(None);
    }
}

fn set_gauges(duty: &str, epoch: Option<i64>) {
    metrics::gauge!("tars_leader", "duty" => duty.to_string()).set(f64::from(epoch.is_some()));
    metrics::gauge!("tars_leader_epoch", "duty" => duty.to_string()).set(epoch.unwrap_or(0) as f64);
}

async fn campaign(
    mut elector: impl Elector,
    config: ElectionConfig,
    term: Term,
    mut stop: watch::Receiver<bool>,
) {
    let mut epoch: Option<i64> = None;
    let mut failing = false;
    loop {
        let mut deposed = false;
        match epoch {
            None => match tokio::time::timeout(config.timeout, elector.try_acquire()).await {
                Ok(Ok(Some(new_epoch))) => {
                    tracing::info!(duty = %term.duty, epoch = new_epoch, "leading this duty now");
                    epoch = Some(new_epoch);
                    term.set(epoch);
                    failing = false;
                }
                Ok(Ok(None)) => failing = false,
                Ok(Err(err)) => {
                    if !failing {
                        tracing::warn!(duty = %term.duty, error = %err, "cannot campaign for leadership; retrying");
                    }
                    failing = true;
                }
                Err(_) => {
                    tracing::warn!(duty = %term.duty, "campaigning for leadership timed out; retrying");
                    elector.resign().await;
                }
            },
            Some(current) => {
                let renewed = tokio::time::timeout(config.timeout, elector.renew(current)).await;
                let lost = match renewed {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(err.to_string()),
                    Err(_) => Some(format!(
                        "the renewal took longer than {} ms",
                        config.timeout.as_millis()
                    )),
                };
                if let Some(reason) = lost {
                    tracing::warn!(duty = %term.duty, epoch = current, reason, "lost leadership: stepping down");
                    epoch = None;
                    term.set(None);
                    elector.resign().await;
                    deposed = true;
                }
            }
        }
        let wait = if epoch.is_some() {
            config.renew_every
        } else if deposed {
            // Let the others take over first: a leader that lost its connection may be the
            // one in trouble.
            config.retry_every * DEPOSED_BACKOFF
        } else {
            config.retry_every
        };
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if epoch.is_some() {
        tracing::info!(duty = %term.duty, "resigning leadership");
        term.set(None);
    }
    elector.resign().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An in-memory lock with epochs, shared by the candidates of a test; `reachable: false`
    /// makes a candidate's calls fail like a lost connection.
    #[derive(Default)]
    struct Lock {
        holder: Option<usize>,
        epoch: i64,
        reachable: Vec<bool>,
    }

    struct Candidate {
        id: usize,
        lock: Arc<Mutex<Lock>>,
    }

    impl Elector for Candidate {
        fn duty(&self) -> &str {
            "reaper"
        }

        fn try_acquire(&mut self) -> BoxFuture<'_, Result<Option<i64>, ElectorError>> {
            let mut lock = self.lock.lock().unwrap();
            let result = if !lock.reachable[self.id] {
                Err("connection refused".into())
            } else if lock.holder.is_none() {
                lock.holder = Some(self.id);
                lock.epoch += 1;
                Ok(Some(lock.epoch))
            } else {
                Ok(None)
            };
            Box::pin(std::future::ready(result))
        }

        fn renew(&mut self, epoch: i64) -> BoxFuture<'_, Result<(), ElectorError>> {
            let mut lock = self.lock.lock().unwrap();
            let result = if !lock.reachable[self.id] {
                // The session is gone: so is the lock.
                if lock.holder == Some(self.id) {
                    lock.holder = None;
                }
                Err("connection reset".into())
            } else if lock.holder == Some(self.id) && lock.epoch == epoch {
                Ok(())
            } else {
                Err("stale epoch".into())
            };
            Box::pin(std::future::ready(result))
        }

        fn resign(&mut self) -> BoxFuture<'_, ()> {
            let mut lock = self.lock.lock().unwrap();
            if lock.holder == Some(self.id) {
                lock.holder = None;
            }
            Box::pin(std::future::ready(()))
        }
    }

    fn candidates(n: usize) -> (Arc<Mutex<Lock>>, Vec<Campaign>) {
        let lock = Arc::new(Mutex::new(Lock {
            reachable: vec![true; n],
            ..Lock::default()
        }));
        let campaigns = (0..n)
            .map(|id| {
                Campaign::start(
                    Candidate {
                        id,
                        lock: lock.clone(),
                    },
                    ElectionConfig::default(),
                )
            })
            .collect();
        (lock, campaigns)
    }

    #[tokio::test(start_paused = true)]
    async fn one_candidate_leads_and_a_lost_connection_hands_over_with_a_higher_epoch() {
        let (lock, campaigns) = candidates(2);
        let first = campaigns[0].leadership();
        let second = campaigns[1].leadership();
        assert_eq!(first.until_leader().await, Some(1));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(first.is_leader() && !second.is_leader());
        assert_eq!(first.fence().unwrap().epoch, 1);

        let mut watching = first.subscribe();
        lock.lock().unwrap().reachable[0] = false;
        let cut = tokio::time::Instant::now();
        watching.wait_for(|leader| !*leader).await.unwrap();
        // The next renewal notices, at most `renew_every` later.
        assert!(cut.elapsed() <= Duration::from_secs(1));
        assert_eq!(first.epoch(), None);
        assert_eq!(second.until_leader().await, Some(2));
        assert!(cut.elapsed() <= Duration::from_secs(2));

        // Back online, the first candidate waits as a follower.
        lock.lock().unwrap().reachable[0] = true;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!first.is_leader() && second.is_leader());
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_resigns_and_another_takes_over() {
        let (_lock, mut campaigns) = candidates(2);
        let first = campaigns[0].leadership();
        first.until_leader().await;
        let second = campaigns[1].leadership();
        campaigns.remove(0).stop().await;
        assert!(!first.is_leader());
        assert_eq!(second.until_leader().await, Some(2));
        // A dropped campaign resigns too (its task, and with it the session, is gone).
        drop(campaigns);
        second.until_deposed().await;
        assert!(!second.is_leader());
    }
}
