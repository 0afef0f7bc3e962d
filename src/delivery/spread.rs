//! One frame to every listener of a room: the sinks the room writes itself go
//! out in batches (one system call each, [`send_batch`]); a large room's are
//! spread over scoped threads, all joined before it returns, so frames stay in
//! order.

use std::sync::Arc;

use super::fanout::{write_batch, Begin, Delivery, Sink};
use super::send_batch;
use crate::room::event::SharedFrame;

/// A room with at least this many listeners spreads its direct writes over
/// `fanout_threads` threads (a few milliseconds of `write`s each), so one big
/// room's fan-out uses every core, as its listeners' tasks did.
pub const PARALLEL_FANOUT_MIN: usize = 2048;

/// Sends `frame` to every sink, over up to `threads` threads when the room is
/// large enough for that to pay.
pub(crate) fn deliver(frame: &SharedFrame, sinks: &[Arc<Sink>], threads: usize) -> Tally {
    if sinks.len() >= PARALLEL_FANOUT_MIN && threads > 1 {
        deliver_in_parallel(frame, sinks, threads)
    } else {
        deliver_all(frame, sinks)
    }
}

/// What the fan-out of one frame came to.
#[derive(Default)]
pub(crate) struct Tally {
    /// Written to sockets by the room.
    pub(crate) written: usize,
    /// Queued for listeners' tasks.
    pub(crate) queued: usize,
    /// Some sink has ended: the room may forget it.
    pub(crate) ended: bool,
}

/// Sends `frame` to every sink.
fn deliver_all(frame: &SharedFrame, sinks: &[Arc<Sink>]) -> Tally {
    let mut tally = Tally::default();
    let mut count = |delivery| match delivery {
        Delivery::Written => tally.written += 1,
        Delivery::Queued => tally.queued += 1,
        Delivery::Ended => tally.ended = true,
    };
    // The sinks the room writes itself, locked, a batch at a time: their
    // sends go out in one system call (send_batch).
    let mut direct = Vec::with_capacity(sinks.len().min(send_batch::BATCH));
    let mut outcomes = Vec::with_capacity(direct.capacity());
    for chunk in sinks.chunks(send_batch::BATCH) {
        for sink in chunk {
            match sink.begin(frame) {
                Begin::Done(delivery) => count(delivery),
                Begin::Direct(write) => direct.push(write),
            }
        }
        write_batch(&mut direct, frame, &mut outcomes, &mut count);
    }
    tally
}

/// [`deliver_all`], the sinks split over `threads` threads: this one and
/// scoped helpers, all done before it returns, so frames stay in order.
fn deliver_in_parallel(frame: &SharedFrame, sinks: &[Arc<Sink>], threads: usize) -> Tally {
    let chunk = sinks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = sinks.chunks(chunk);
        let own = parts.next().unwrap_or_default();
        let helpers: Vec<_> = parts
            .map(|part| {
                std::thread::Builder::new()
                    .name("syncroom-fanout".into())
                    .spawn_scoped(scope, move || deliver_all(frame, part))
                    // No thread to be had: this one writes that part too.
                    .map_err(|_| part)
            })
            .collect();
        let mut tally = deliver_all(frame, own);
        for helper in helpers {
            let part = match helper {
                Ok(helper) => helper.join().unwrap_or_default(),
                Err(part) => deliver_all(frame, part),
            };
            tally.written += part.written;
            tally.queued += part.queued;
            tally.ended |= part.ended;
        }
        tally
    })
}
