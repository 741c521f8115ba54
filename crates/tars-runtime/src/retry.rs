//! Retry with exponential backoff and full jitter (AWS's "Exponential Backoff And Jitter"):
//! before attempt `n + 1` the caller sleeps a uniformly random time in
//! `[0, min(cap, base · 2^n))`, so callers that failed together do not come back together.
//! Only errors the caller classifies as transient are retried; the others, and the last
//! transient one once `max_attempts` or `max_elapsed` is reached, are returned as they are.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;
use tokio::time::Instant;

/// How often and how long to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The first delay's upper bound.
    pub base: Duration,
    /// No delay is longer.
    pub cap: Duration,
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// No attempt starts later than this after the first; `None`: no limit.
    pub max_elapsed: Option<Duration>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            max_attempts: 5,
            max_elapsed: Some(Duration::from_secs(30)),
        }
    }
}

impl Backoff {
    /// The upper bound of the delay after failed attempt `attempt` (0-based):
    /// `min(cap, base · 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay after failed attempt `attempt`, drawn with `jitter`.
    pub fn delay(&self, attempt: u32, jitter: &mut impl Jitter) -> Duration {
        self.ceiling(attempt)
            .mul_f64(jitter.fraction().clamp(0.0, 1.0))
    }
}

/// Where the random part of a delay comes from.
pub trait Jitter {
    /// A number in `[0, 1)`.
    fn fraction(&mut self) -> f64;
}

/// The process's jitter: SplitMix64 seeded from the standard library's per-process random
/// hasher keys (no extra dependency, different in every process).
#[derive(Debug, Clone)]
pub struct RandomJitter(u64);

impl Default for RandomJitter {
    fn default() -> RandomJitter {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        RandomJitter(hasher.finish())
    }
}

impl Jitter for RandomJitter {
    fn fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `op` until it succeeds, fails with an error `is_transient` rejects, or the policy's
/// attempts or time run out; sleeps a jittered backoff between attempts.
pub async fn retry<T, E, Fut>(
    policy: &Backoff,
    is_transient: impl Fn(&E) -> bool,
    op: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    retry_with(policy, &mut RandomJitter::default(), is_transient, op).await
}

/// [`retry`] with the caller's jitter source.
pub async fn retry_with<T, E, Fut>(
    policy: &Backoff,
    jitter: &mut impl Jitter,
    is_transient: impl Fn(&E) -> bool,
    mut op: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        attempt += 1;
        if !is_transient(&err) || attempt >= policy.max_attempts.max(1) {
            return Err(err);
        }
        let delay = policy.delay(attempt - 1, jitter);
        if let Some(limit) = policy.max_elapsed
            && started.elapsed() + delay > limit
        {
            return Err(err);
        }
        tracing::debug!(
            attempt,
            delay_ms = delay.as_millis() as u64,
            "transient failure; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Replays fixed fractions.
    struct Fixed(Vec<f64>);

    impl Jitter for Fixed {
        fn fraction(&mut self) -> f64 {
            self.0.remove(0)
        }
    }

    fn policy() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts: 6,
            max_elapsed: None,
        }
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let ceilings: Vec<u128> = (0..6).map(|n| policy().ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy().ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn random_jitter_stays_in_the_unit_interval_and_varies() {
        let mut jitter = RandomJitter::default();
        let draws: Vec<f64> = (0..1000).map(|_| jitter.fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_after_jittered_delays() {
        let calls = RefCell::new(Vec::new());
        let started = Instant::now();
        let mut jitter = Fixed(vec![0.5, 0.25, 1.0]);
        let result: Result<&str, &str> = retry_with(
            &policy(),
            &mut jitter,
            |_| true,
            || {
                calls.borrow_mut().push(started.elapsed().as_millis());
                let n = calls.borrow().len();
                async move {
                    if n < 4 {
                        Err("unreachable")
                    } else {
                        Ok("done")
                    }
                }
            },
        )
        .await;
        assert_eq!(result, Ok("done"));
        // Sleeps of 0.5 · 100, 0.25 · 200 and 1.0 · 400 ms.
        assert_eq!(*calls.borrow(), [0, 50, 100, 500]);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_returned_at_once() {
        let mut calls = 0;
        let result: Result<(), &str> = retry_with(
            &policy(),
            &mut Fixed(vec![]),
            |err| *err == "unreachable",
            || {
                calls += 1;
                async { Err("invalid input") }
            },
        )
        .await;
        assert_eq!((result, calls), (Err("invalid input"), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_and_elapsed_time_are_bounded() {
        let mut calls = 0;
        let result: Result<(), u32> = retry_with(
            &policy(),
            &mut Fixed(vec![1.0; 10]),
            |_| true,
            || {
                calls += 1;
                let n = calls;
                async move { Err(n) }
            },
        )
        .await;
        assert_eq!(result, Err(6), "the last error after max_attempts");

        let limited = Backoff {
            max_elapsed: Some(Duration::from_millis(350)),
            ..policy()
        };
        let started = Instant::now();
        let mut calls = 0;
        let result: Result<(), u32> = retry_with(
            &limited,
            &mut Fixed(vec![1.0; 10]),
            |_| true,
            || {
                calls += 1;
                let n = calls;
                async move { Err(n) }
            },
        )
        .await;
        // Attempts at 0, 100 and 300 ms; the next would start at 700 ms > 350 ms.
        assert_eq!(result, Err(3));
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }
}
