//! A connection future that wakes itself while it is being polled is polled
//! again on the spot, instead of going back to tokio as a yield.
//!
//! Why: hyper's HTTP/1 request body is a channel between the connection's
//! dispatcher and the handler, and both run inside the one connection task. When
//! a handler asks for the body of a command POST, the channel tells the
//! dispatcher it wants data by waking the dispatcher's task: the very task that
//! is running. Tokio's multi-threaded scheduler counts a task that wakes itself
//! as a task that yielded: it puts it at the back of the run queue and wakes an
//! idle worker to steal it. That is a futex call or two and a change of core for
//! every command (traced with uprobes on tokio's wake functions; the trace and
//! what this wrapper saves per command are in BENCHMARKS.md).
//!
//! [`PollAgain`] hands the inner future a waker of its own. A wake that arrives
//! while the inner future is being polled only marks it, and the inner future is
//! polled again before returning; a wake at any other time goes straight to the
//! task's own waker. A future that keeps waking itself is polled again a few
//! times at most and then yields to tokio as before, and never once tokio's
//! cooperative budget for this task is spent. The wrapper cannot tell a wake by
//! the way from a deliberate yield (hyper's HTTP/1 dispatcher yields after 16
//! turns of its loop): such a yield is polled again too, up to the same bound,
//! so a busy connection may run a few turns longer per task poll; tokio's budget
//! (every socket read spends from it) still ends the run.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// How many times in a row a future that woke itself is polled again before
/// it goes back to the scheduler as a yield.
const MAX_POLLS_AGAIN: u32 = 4;

/// Not being polled: a wake goes to the task.
const IDLE: u8 = 0;
/// Being polled: a wake is noted for the poller.
const POLLING: u8 = 1;
/// Being polled and woken meanwhile: the poller polls again.
const WOKEN: u8 = 2;

/// Wraps `F` so that it is polled again at once when it wakes itself during a
/// poll (see the module documentation).
pub struct PollAgain<F> {
    inner: Pin<Box<F>>,
    relay: Arc<Relay>,
    waker: Waker,
}

impl<F: Future> PollAgain<F> {
    pub fn new(inner: F) -> Self {
        let relay = Arc::new(Relay {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(relay.clone());
        Self {
            inner: Box::pin(inner),
            relay,
            waker,
        }
    }
}

impl<F: Future> Future for PollAgain<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Every field is Unpin (the inner future is boxed).
        let this = &mut *self;
        this.relay.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        let mut again = 0;
        loop {
            this.relay.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(output) = this.inner.as_mut().poll(&mut inner_cx) {
                this.relay.state.store(IDLE, Ordering::Release);
                return Poll::Ready(output);
            }
            if this
                .relay
                .state
                .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Nobody woke it during the poll; a later wake goes to the task.
                return Poll::Pending;
            }
            // Woken during its own poll.
            again += 1;
            if again > MAX_POLLS_AGAIN || !tokio::task::coop::has_budget_remaining() {
                this.relay.state.store(IDLE, Ordering::Release);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

struct Relay {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            // The poller sees it when its poll returns.
            Ok(_) | Err(WOKEN) => {}
            Err(_) => self.task.wake(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    /// Counts the wakes that reach the task.
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        (counter, waker)
    }

    /// Polls `future` inside `PollAgain` once: what it gave, and how many wakes
    /// reached the task meanwhile.
    fn poll_once<F: Future>(future: F) -> (Poll<F::Output>, usize) {
        let (counter, waker) = counting();
        let mut future = std::pin::pin!(PollAgain::new(future));
        let polled = future.as_mut().poll(&mut Context::from_waker(&waker));
        (polled, counter.0.load(Ordering::SeqCst))
    }

    #[test]
    fn a_self_wake_is_polled_again_without_waking_the_task() {
        // Wakes itself on its first two polls, finishes on the third.
        let mut polls = 0;
        let future = std::future::poll_fn(move |cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        assert_eq!(poll_once(future), (Poll::Ready(3), 0));
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_to_the_task() {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let future = std::future::poll_fn(move |cx| {
            counted.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        // Polled once and again MAX_POLLS_AGAIN times, then one real wake so
        // the scheduler comes back to it after the others.
        assert_eq!(poll_once(future), (Poll::Pending, 1));
        assert_eq!(polls.load(Ordering::SeqCst), 1 + MAX_POLLS_AGAIN as usize);
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task() {
        let stored = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let keep = stored.clone();
        let future = std::future::poll_fn(move |cx| {
            *keep.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        });
        let (counter, waker) = counting();
        let mut future = std::pin::pin!(PollAgain::new(future));
        assert_eq!(
            future.as_mut().poll(&mut Context::from_waker(&waker)),
            Poll::Pending
        );
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        let inner_waker = stored.lock().unwrap().take().unwrap();
        std::thread::spawn(move || inner_waker.wake())
            .join()
            .unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_wake_from_another_thread_during_the_poll_is_polled_again() {
        // The inner future hands its waker to a thread that wakes it and is
        // joined while the poll is still running: the poll goes round again.
        let mut polls = 0;
        let future = std::future::poll_fn(move |cx| {
            polls += 1;
            if polls == 1 {
                let waker = cx.waker().clone();
                std::thread::spawn(move || waker.wake()).join().unwrap();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        assert_eq!(poll_once(future), (Poll::Ready(2), 0));
    }

    #[tokio::test]
    async fn a_task_whose_budget_is_spent_yields_to_tokio() {
        // The first poll spends the task's whole coop budget and then wakes
        // itself: it must go back to the scheduler (and come back with a fresh
        // budget), not be polled again on the spot with none left.
        let mut polls = 0;
        let future = std::future::poll_fn(move |cx| {
            polls += 1;
            if polls == 1 {
                // Each unit counts as spent only once progress is claimed.
                while let Poll::Ready(unit) = tokio::task::coop::poll_proceed(cx) {
                    unit.made_progress();
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready((polls, tokio::task::coop::has_budget_remaining()))
            }
        });
        let (polls, fresh_budget) = tokio::spawn(PollAgain::new(future)).await.unwrap();
        assert_eq!(polls, 2);
        assert!(fresh_budget, "polled again with its budget spent");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_channel_fed_from_another_task_is_never_missed() {
        // Wakes from another task racing the poller's own polls: every
        // message arrives in order (a lost wake would stall until the timeout).
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<u32>(4);
        let producer = tokio::spawn(async move {
            for n in 0..10_000 {
                sender.send(n).await.unwrap();
            }
        });
        let consumer = tokio::spawn(PollAgain::new(async move {
            let mut next = 0;
            while let Some(n) = receiver.recv().await {
                assert_eq!(n, next);
                next += 1;
            }
            next
        }));
        let received = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            producer.await.unwrap();
            consumer.await.unwrap()
        })
        .await
        .expect("every wake reached the consumer");
        assert_eq!(received, 10_000);
    }
}
