//! Two cores for one training phase: the gradient steps between two rollouts (DQN's 128 on
//! CartPole, DDPG's and TD3's one) run on a private two-thread rayon pool whose second thread
//! stays awake, so that each step's large products and its Adam updates can be split in
//! halves across the cores.
//!
//! Why not rayon's global pool: a product of DQN's 256-wide layer takes ~50 µs, and a
//! `rayon::join` from outside a pool, or onto a worker that has gone to sleep, costs about as
//! much (measured: DQN CartPole 17.1 s split that way, 13.8 s not split). Here the phase runs
//! *on* the pool's first thread and the second one spins on [`rayon::yield_now`] until the
//! phase ends, picking up each half as soon as it is pushed. Spinning, not `sched_yield`: on
//! this 2-vCPU machine yielding made a gradient step slower than one core (712 µs against
//! 583 µs; spinning 400 µs). The two threads are pinned to two different CPUs: unpinned, the
//! scheduler sometimes put both on one CPU at a phase's start and the spinner starved the
//! phase (DQN CartPole 10.5–19.1 s unpinned, 10.1–11.9 s pinned, 13.6 s on one core).
//!
//! Splitting never changes a bit: products are split by output columns and every output
//! element sums over the same `k` in the same order (`gemm.rs` tests it), and Adam is
//! element-wise. So training gives the same weights with one core or two.
//!
//! The pair is opt-in per process ([`enable`]): `tars train` and `tars bench train`, which
//! train one run at a time, turn it on; the service and the evaluation engine, which train
//! several runs at once or answer requests beside them, leave it off, because there the
//! spinning thread would take a core from other work. One phase at a time per process holds
//! the pair; a caller that finds it off or taken, or that runs on a one-thread rayon pool
//! (`RAYON_NUM_THREADS=1`, or inside `ThreadPool::install` of one thread), runs its phase on
//! its own thread, unsplit.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// The private pool, created by the first phase of a process that enabled the pair.
static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();

/// Whether this machine has the second core the pair needs; without it every phase runs on
/// its caller's thread.
pub fn available() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// The private pool: two threads, or none on a one-core machine.
fn pool() -> Option<&'static ThreadPool> {
    POOL.get_or_init(|| {
        available().then(|| {
            ThreadPoolBuilder::new()
                .num_threads(2)
                .thread_name(|i| format!("tars-pair-{i}"))
                .start_handler(pin_to_allowed_cpu)
                .build()
                .expect("a two-thread pool")
        })
    })
    .as_ref()
}

/// Pins pool thread `index` to the `index`-th CPU this process may run on; left unpinned
/// where that is not possible (other systems, a failed call).
fn pin_to_allowed_cpu(index: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: `cpu_set_t` is plain data (all-zero is the empty set), and both calls get a
    // pointer to one with its true size.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return;
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &allowed))
            .nth(index)
        else {
            return;
        };
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        libc::sched_setaffinity(0, size, &one);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = index;
}

/// Whether this process lets training phases use the pair.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Lets this process's training phases run on two cores from now on. For processes that
/// train one run at a time and do nothing else meanwhile.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether the pair is held by some phase.
static IN_USE: AtomicBool = AtomicBool::new(false);

/// Phases run on the pair so far.
static PHASES: AtomicU64 = AtomicU64::new(0);

/// How many phases this process has run on two cores: lets tests and benchmarks check that
/// the pair was really used.
pub fn phases_on_two_cores() -> u64 {
    PHASES.load(Ordering::Relaxed)
}

/// Whether the current thread runs a phase on the pair: then splitting work in two with
/// `rayon::join` costs about a microsecond.
pub(crate) fn active() -> bool {
    let pool = POOL.get().and_then(Option::as_ref);
    pool.is_some_and(|pool| pool.current_thread_index().is_some())
}

/// Runs `phase` on two cores when the pair is enabled and free and the caller's rayon pool
/// has more than one thread; otherwise on the calling thread. Either way the result is the
/// same.
pub fn on_two_cores<R: Send>(phase: impl FnOnce() -> R + Send) -> R {
    if !ENABLED.load(Ordering::Relaxed) || rayon::current_num_threads() < 2 || active() {
        return phase();
    }
    let Some(pool) = pool() else {
        return phase();
    };
    if IN_USE.swap(true, Ordering::Acquire) {
        return phase();
    }
    let _release = Release;
    PHASES.fetch_add(1, Ordering::Relaxed);
    pool.install(|| {
        let done = AtomicBool::new(false);
        rayon::scope(|scope| {
            scope.spawn(|_| {
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
            // Stops the spinner even if `phase` panics, or the scope would wait for it forever.
            let _stop = Stop(&done);
            phase()
        })
    })
}

/// Frees the pair when a phase ends.
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        IN_USE.store(false, Ordering::Release);
    }
}

/// Ends the spinner when a phase ends.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Runs `phase` on the pair, waiting while other tests hold it; `None` on one core.
    pub(in crate::nn) fn on_pair<R: Send>(phase: impl Fn() -> R + Sync) -> Option<R> {
        pool()?;
        enable();
        for _ in 0..1_000_000 {
            if let Some(result) = on_two_cores(|| active().then(&phase)) {
                return Some(result);
            }
            std::thread::yield_now();
        }
        panic!("the pair stayed taken");
    }

    fn eventually_on_pair() -> bool {
        on_pair(|| ()).is_some()
    }

    #[test]
    fn a_phase_runs_on_the_pair_and_frees_it() {
        if pool().is_none() {
            return; // one core: nothing to test
        }
        assert!(eventually_on_pair());
        assert!(!active(), "the caller is not on the pair afterwards");
        // A nested phase runs where its caller runs.
        on_two_cores(|| {
            let outer = active();
            assert!(!outer || on_two_cores(active));
        });
        // So does a phase called from a one-thread pool.
        let one = ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert!(!one.install(|| on_two_cores(active)));
    }

    #[test]
    fn a_panicking_phase_frees_the_pair() {
        if pool().is_none() {
            return;
        }
        let caught = std::panic::catch_unwind(|| on_two_cores(|| panic!("boom")));
        assert!(caught.is_err());
        assert!(eventually_on_pair(), "the pair stayed taken after a panic");
    }
}
