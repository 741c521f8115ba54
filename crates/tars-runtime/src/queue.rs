//! The bounded priority task queue of an engine (seed 002's `max_concurrent_tasks`,
//! `queue_size`, `task_timeout_seconds`).
//!
//! - A full queue refuses a task at once with [`QueueError::Backpressure`]; it never grows past
//!   `queue_size`.
//! - Tasks are served highest priority first, first in first out within a priority.
//! - At most `max_concurrent_tasks` run at the same time; a task still running after
//!   `task_timeout` is cancelled (its future dropped) and ends [`TaskStatus::TimedOut`].
//!
//! [`TaskQueue::run`] is the executor: it pulls tasks, runs each through the handler under
//! the timeout and hands every [`Outcome`] to a callback (the engine runner records it).

use crate::{BoxFuture, Priority, Task, TaskOutput, TaskStatus};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// The limits of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Tasks running at the same time (at least 1).
    pub max_concurrent_tasks: usize,
    /// Tasks waiting (at least 1); one more is refused.
    pub queue_size: usize,
    /// The longest a task may run.
    pub task_timeout: Duration,
}

/// Why a task was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue holds `queue_size` tasks already: retry later.
    #[error("the task queue is full ({capacity} tasks waiting); retry later")]
    Backpressure { capacity: usize },
    /// The queue is closed (the engine is stopping).
    #[error("the task queue is closed: the engine is stopping")]
    Closed,
}

/// How a task ended, as the executor saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub task: Task,
    pub status: TaskStatus,
    pub output: Option<TaskOutput>,
    pub error: Option<String>,
    /// When it started running (after waiting in the queue).
    pub started: Instant,
    pub duration: Duration,
}

/// What the executor calls per task.
pub type Handler =
    Arc<dyn Fn(Task) -> BoxFuture<'static, Result<TaskOutput, String>> + Send + Sync>;

struct Entry {
    priority: Priority,
    seq: u64,
    task: Task,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// The heap pops the greatest: highest priority, then the lowest sequence number.
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Waiting {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    closed: bool,
}

/// A bounded priority queue with its executor's limits. Cheap to share (`Arc`).
pub struct TaskQueue {
    config: QueueConfig,
    waiting: Mutex<Waiting>,
    ready: Notify,
    slots: Arc<Semaphore>,
    running: AtomicUsize,
}

impl TaskQueue {
    /// A queue with `config`'s limits; zero limits are raised to 1.
    pub fn new(config: QueueConfig) -> Arc<TaskQueue> {
        let config = QueueConfig {
            max_concurrent_tasks: config.max_concurrent_tasks.max(1),
            queue_size: config.queue_size.max(1),
            ..config
        };
        Arc::new(TaskQueue {
            config,
            waiting: Mutex::new(Waiting::default()),
            ready: Notify::new(),
            slots: Arc::new(Semaphore::new(config.max_concurrent_tasks)),
            running: AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Queues a task, or refuses it at once when the queue is full or closed.
    pub fn push(&self, task: Task) -> Result<(), QueueError> {
        let mut waiting = self.waiting.lock().expect("queue lock");
        if waiting.closed {
            return Err(QueueError::Closed);
        }
        if waiting.heap.len() >= self.config.queue_size {
            return Err(QueueError::Backpressure {
                capacity: self.config.queue_size,
            });
        }
        let seq = waiting.next_seq;
        waiting.next_seq += 1;
        waiting.heap.push(Entry {
            priority: task.priority,
            seq,
            task,
        });
        drop(waiting);
        self.ready.notify_one();
        Ok(())
    }

    /// Tasks waiting.
    pub fn len(&self) -> usize {
        self.waiting.lock().expect("queue lock").heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tasks running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// The next task (highest priority, oldest first); `None` once closed and empty.
    pub async fn pop(&self) -> Option<Task> {
        loop {
            let notified = self.ready.notified();
            {
                let mut waiting = self.waiting.lock().expect("queue lock");
                if let Some(entry) = waiting.heap.pop() {
                    return Some(entry.task);
                }
                if waiting.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Refuses new tasks; returns the ones still waiting (they will not run).
    pub fn close(&self) -> Vec<Task> {
        let mut waiting = self.waiting.lock().expect("queue lock");
        waiting.closed = true;
        let left = std::mem::take(&mut waiting.heap).into_sorted_vec();
        drop(waiting);
        self.ready.notify_waiters();
        left.into_iter().rev().map(|entry| entry.task).collect()
    }

    /// The executor: runs tasks through `handler`, at most `max_concurrent_tasks` at once and
    /// each for at most `task_timeout`, and hands every outcome to `done`. Returns once the
    /// queue is closed, empty and every started task has ended.
    pub async fn run(
        self: Arc<Self>,
        handler: Handler,
        done: Arc<dyn Fn(Outcome) -> BoxFuture<'static, ()> + Send + Sync>,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let Some(task) = self.pop().await else {
                break;
            };
            self.running.fetch_add(1, Ordering::Relaxed);
            let this = self.clone();
            let handler = handler.clone();
            let done = done.clone();
            tasks.spawn(async move {
                let outcome = this.execute(task, handler).await;
                this.running.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
                done(outcome).await;
            });
            // Reap what finished, so the set does not grow with the engine's lifetime.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn execute(&self, task: Task, handler: Handler) -> Outcome {
        let started = Instant::now();
        let run = handler(task.clone());
        let (status, output, error) =
            match tokio::time::timeout(self.config.task_timeout, run).await {
                Ok(Ok(output)) => (TaskStatus::Completed, Some(output), None),
                Ok(Err(error)) => (TaskStatus::Failed, None, Some(error)),
                Err(_) => (
                    TaskStatus::TimedOut,
                    None,
                    Some(format!(
                        "cancelled after the task timeout of {:?}",
                        self.config.task_timeout
                    )),
                ),
            };
        Outcome {
            task,
            status,
            output,
            error,
            started,
            duration: started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(max_concurrent_tasks: usize, queue_size: usize, timeout_ms: u64) -> QueueConfig {
        QueueConfig {
            max_concurrent_tasks,
            queue_size,
            task_timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn task(kind: &str, priority: Priority) -> Task {
        Task::new(kind, priority, json!({}))
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_never_grows() {
        let queue = TaskQueue::new(config(1, 3, 1_000));
        for n in 0..3 {
            queue
                .push(task(&format!("t{n}"), Priority::Normal))
                .unwrap();
        }
        for _ in 0..10 {
            assert_eq!(
                queue.push(task("extra", Priority::Critical)),
                Err(QueueError::Backpressure { capacity: 3 })
            );
        }
        assert_eq!(queue.len(), 3);
        assert_eq!(
            QueueError::Backpressure { capacity: 3 }.to_string(),
            "the task queue is full (3 tasks waiting); retry later"
        );
    }

    #[tokio::test]
    async fn highest_priority_first_fifo_within_a_priority() {
        let queue = TaskQueue::new(config(1, 10, 1_000));
        queue.push(task("low", Priority::Low)).unwrap();
        queue.push(task("normal-1", Priority::Normal)).unwrap();
        queue.push(task("critical", Priority::Critical)).unwrap();
        queue.push(task("normal-2", Priority::Normal)).unwrap();
        queue.push(task("high", Priority::High)).unwrap();
        queue.push(task("normal-3", Priority::Normal)).unwrap();
        let mut order = Vec::new();
        while !queue.is_empty() {
            order.push(queue.pop().await.unwrap().kind);
        }
        assert_eq!(
            order,
            [
                "critical", "high", "normal-1", "normal-2", "normal-3", "low"
            ]
        );
    }

    #[tokio::test]
    async fn closing_refuses_new_tasks_and_ends_the_executor() {
        let queue = TaskQueue::new(config(1, 10, 1_000));
        queue.push(task("a", Priority::Low)).unwrap();
        queue.push(task("b", Priority::High)).unwrap();
        let left: Vec<_> = queue.close().into_iter().map(|t| t.kind).collect();
        assert_eq!(left, ["b", "a"]);
        assert_eq!(
            queue.push(task("c", Priority::Low)),
            Err(QueueError::Closed)
        );
        assert_eq!(queue.pop().await, None);
    }

    type Outcomes = Arc<Mutex<Vec<Outcome>>>;

    fn recorder() -> (
        Outcomes,
        Arc<dyn Fn(Outcome) -> BoxFuture<'static, ()> + Send + Sync>,
    ) {
        let outcomes: Outcomes = Arc::default();
        let sink = outcomes.clone();
        (
            outcomes,
            Arc::new(move |outcome| -> BoxFuture<'static, ()> {
                sink.lock().unwrap().push(outcome);
                Box::pin(async {})
            }),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_past_its_timeout_is_cancelled_and_recorded_as_timed_out() {
        let queue = TaskQueue::new(config(2, 10, 50));
        let finished = Arc::new(AtomicUsize::new(0));
        let seen = finished.clone();
        let handler: Handler = Arc::new(move |task: Task| -> BoxFuture<'static, _> {
            let seen = seen.clone();
            Box::pin(async move {
                if task.kind == "slow" {
                    tokio::time::sleep(Duration::from_secs(3_600)).await;
                }
                if task.kind == "bad" {
                    return Err("bad input".to_string());
                }
                seen.fetch_add(1, Ordering::Relaxed);
                Ok(TaskOutput::new(json!({"kind": task.kind})))
            })
        });
        let (outcomes, done) = recorder();
        queue.push(task("slow", Priority::Normal)).unwrap();
        queue.push(task("fast", Priority::Normal)).unwrap();
        queue.push(task("bad", Priority::Normal)).unwrap();
        let executor = tokio::spawn(queue.clone().run(handler, done));
        tokio::time::sleep(Duration::from_secs(1)).await;
        queue.close();
        executor.await.unwrap();
        let outcomes = outcomes.lock().unwrap();
        let status = |kind: &str| {
            let outcome = outcomes.iter().find(|o| o.task.kind == kind).unwrap();
            (outcome.status, outcome.error.clone())
        };
        assert_eq!(
            status("slow"),
            (
                TaskStatus::TimedOut,
                Some("cancelled after the task timeout of 50ms".into())
            )
        );
        assert_eq!(status("fast"), (TaskStatus::Completed, None));
        assert_eq!(
            status("bad"),
            (TaskStatus::Failed, Some("bad input".into()))
        );
        // The slow task's body never got past its sleep.
        assert_eq!(finished.load(Ordering::Relaxed), 1);
        assert_eq!(queue.running(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_max_concurrent_tasks_run_at_once() {
        let queue = TaskQueue::new(config(3, 100, 10_000));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (now2, peak2) = (now.clone(), peak.clone());
        let handler: Handler = Arc::new(move |_task: Task| -> BoxFuture<'static, _> {
            let (now, peak) = (now2.clone(), peak2.clone());
            Box::pin(async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(TaskOutput::new(json!(null)))
            })
        });
        let (outcomes, done) = recorder();
        for n in 0..30 {
            queue
                .push(task(&format!("t{n}"), Priority::Normal))
                .unwrap();
        }
        let executor = tokio::spawn(queue.clone().run(handler, done));
        while outcomes.lock().unwrap().len() < 30 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        queue.close();
        executor.await.unwrap();
        let peak = peak.load(Ordering::SeqCst);
        assert!((2..=3).contains(&peak), "peak {peak}");
        assert!(
            outcomes
                .lock()
                .unwrap()
                .iter()
                .all(|o| o.status == TaskStatus::Completed)
        );
    }
}
