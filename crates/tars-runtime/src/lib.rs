//! The runtime the long-running parts of T.A.R.S. share in fleet and embedded mode (seed 002):
//! the engine lifecycle and registry, the bounded priority task queue, circuit breakers and
//! retry with backoff around every dependency, and leader election for singleton duties.

pub mod breaker;
pub mod leader;
pub mod retry;
