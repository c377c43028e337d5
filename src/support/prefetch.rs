//! Work prepared ahead of its consumer: a producer thread fills a bounded queue while the caller
//! consumes it, so host-side preparation (augmenting the next batch) overlaps device work (the
//! current step) instead of lengthening it.
//!
//! The queue is bounded so the producer never runs more than `depth` items ahead (memory stays
//! flat), and the time the consumer spends blocked on it is measured: that is the share of the
//! step the device waited for its input.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The consumer's end of the queue: items in order, and how long it waited for them.
pub struct Queue<T> {
    receiver: mpsc::Receiver<T>,
    waited: Duration,
}

impl<T> Queue<T> {
    /// Time spent blocked on the producer so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl<T> Iterator for Queue<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let start = Instant::now();
        let item = self.receiver.recv().ok();
        self.waited += start.elapsed();
        item
    }
}

/// Produces `produce(0)`, `produce(1)`, … `produce(count − 1)` on a worker thread, at most
/// `depth` items ahead, while `consume` takes them from the [`Queue`] on this thread. When
/// `consume` returns, early or not, the producer stops after the item it is working on. A panic
/// in the producer is raised here once the queue has drained.
pub fn scoped<T: Send, R>(
    depth: usize,
    count: usize,
    produce: impl Fn(usize) -> T + Sync,
    consume: impl FnOnce(&mut Queue<T>) -> R,
) -> R {
    let produce = &produce;
    thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel(depth.max(1));
        thread::Builder::new()
            .name("spreadout-prefetch".to_owned())
            .spawn_scoped(scope, move || {
                for index in 0..count {
                    // A closed queue means the consumer is done: stop producing.
                    if sender.send(produce(index)).is_err() {
                        break;
                    }
                }
            })
            .expect("the OS can start a thread");
        let mut queue = Queue {
            receiver,
            waited: Duration::ZERO,
        };
        // The queue (and with it the receiver) is dropped when `consume` returns, before the
        // scope joins the producer, so a producer blocked on a full queue is released.
        consume(&mut queue)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn delivers_every_item_in_order() {
        let items = scoped(2, 50, |i| i * i, |queue| queue.collect::<Vec<_>>());
        assert_eq!(items, (0..50).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn stays_within_depth_and_stops_when_the_consumer_does() {
        let produced = AtomicUsize::new(0);
        let taken = scoped(
            3,
            1000,
            |i| {
                produced.fetch_add(1, Ordering::SeqCst);
                i
            },
            |queue| {
                let first: Vec<_> = queue.take(5).collect();
                // Give the producer time to run ahead as far as the queue lets it.
                thread::sleep(Duration::from_millis(50));
                let ahead = produced.load(Ordering::SeqCst);
                assert!(
                    ahead <= 5 + 3 + 1,
                    "{ahead} produced for 5 taken with depth 3"
                );
                first
            },
        );
        assert_eq!(taken, vec![0, 1, 2, 3, 4]);
        assert!(produced.load(Ordering::SeqCst) < 1000);
    }

    #[test]
    fn measures_the_time_spent_waiting() {
        let waited = scoped(
            1,
            3,
            |i| {
                thread::sleep(Duration::from_millis(30));
                i
            },
            |queue| {
                for _ in queue.by_ref() {}
                queue.waited()
            },
        );
        assert!(waited >= Duration::from_millis(60), "{waited:?}");
    }
}
