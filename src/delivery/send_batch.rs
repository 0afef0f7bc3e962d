//! One frame to many sockets in one system call.
//!
//! A room's fan-out writes the same frame to every listener it holds directly
//! (see [`super::fanout`]). One `send` per listener costs a kernel entry each,
//! and on loopback each send wakes the reader, which often preempts the
//! writer on its way back to user space: a context switch per listener. With
//! io_uring the room submits the sends of a whole batch at once and collects
//! their results; every send is non-blocking (`MSG_DONTWAIT`), so a socket
//! that is full answers `EAGAIN` at once, exactly as a non-blocking `write`
//! would, and the room hands it back to its task.
//!
//! A send handed to the kernel holds the caller's buffer and socket until its
//! completion is posted, and the kernel may run it on one of its own workers,
//! after `io_uring_enter` has returned. So no call returns while the kernel
//! holds anything of it: it reaps every completion, and if the ring itself
//! fails it cancels what the kernel took, waits for those completions too, and
//! drops the ring with the entries the kernel never took (those are then sent
//! one at a time). Otherwise the socket could be closed, its fd number reused
//! by another client, or the buffer freed, while a send still points at them.
//!
//! Each thread keeps its own small ring, made on first use. Where io_uring is
//! not to be had (another OS, an old kernel, a sandbox that forbids it, such
//! as the shipped systemd unit's `SystemCallFilter=@system-service`), the same
//! batch is sent one `send` at a time, and the log says so once.

use std::io;
use std::os::fd::BorrowedFd;

/// Most sends submitted at once (and the ring's size).
pub(crate) const BATCH: usize = 128;

/// Sends `writes[i].1` on socket `writes[i].0`, each non-blocking, and puts
/// each outcome (bytes taken, or the error) in `results`, in order.
///
/// When it returns, the kernel holds none of the sockets and buffers: each
/// send went (whole or in part), failed, or was cancelled before it ran (an
/// `Interrupted` error: not a byte went).
pub(crate) fn send_all(writes: &[(BorrowedFd<'_>, &[u8])], results: &mut Vec<io::Result<usize>>) {
    results.clear();
    for chunk in writes.chunks(BATCH) {
        // The ring answers for the first `answered` writes; what it never
        // handed to the kernel goes one `send` at a time.
        let answered = uring::send_chunk(chunk, results);
        let rest = chunk.get(answered..).unwrap_or_default();
        results.extend(rest.iter().map(|&(fd, bytes)| send_one(fd, bytes)));
    }
}

/// One non-blocking `send` (no SIGPIPE: a closed peer is an error, not a signal).
#[cfg(target_os = "linux")]
fn send_one(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is borrowed, so the socket stays open for the call, and
    // `bytes` is a live buffer of `bytes.len()` bytes; the kernel is done with
    // both when `send` returns.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        // Non-negative and at most `bytes.len()`: fits.
        Ok(sent.unsigned_abs())
    }
}

/// One `write` on a duplicate of the descriptor (closed on return): no
/// `unsafe`, at the cost of a `dup` where there is no io_uring anyway. The
/// socket is non-blocking (tokio made it so), and the duplicate shares that.
#[cfg(not(target_os = "linux"))]
fn send_one(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::from(fd.try_clone_to_owned()?);
    stream.write(bytes)
}

#[cfg(target_os = "linux")]
mod uring {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::sync::atomic::{AtomicBool, Ordering};

    use io_uring::types::CancelBuilder;
    use io_uring::{opcode, squeue, types, EnterFlags, IoUring};

    use super::BATCH;

    /// This thread's ring: not tried yet, made, or not to be had.
    enum Ring {
        Untried,
        Ready(Box<IoUring>),
        Unavailable,
    }

    static REPORTED: AtomicBool = AtomicBool::new(false);

    thread_local! {
        static RING: RefCell<Ring> = const { RefCell::new(Ring::Untried) };
    }

    /// Makes this thread send one `send` at a time, as where io_uring is forbidden.
    #[cfg(test)]
    pub(super) fn forbid_on_this_thread() {
        RING.with(|ring| *ring.borrow_mut() = Ring::Unavailable);
    }

    /// Sends the first writes of `chunk` (at most [`BATCH`]) through this
    /// thread's ring and appends their outcomes; answers how many (0 if there
    /// is no ring). The kernel holds none of them when this returns.
    pub(super) fn send_chunk(
        chunk: &[(BorrowedFd<'_>, &[u8])],
        results: &mut Vec<io::Result<usize>>,
    ) -> usize {
        RING.with(|ring| {
            let mut ring = ring.borrow_mut();
            if matches!(*ring, Ring::Untried) {
                *ring = match IoUring::new(BATCH as u32) {
                    Ok(made) => Ring::Ready(Box::new(made)),
                    Err(error) => {
                        // Said once per process, not once per thread.
                        if !REPORTED.swap(true, Ordering::Relaxed) {
                            tracing::info!(%error, "io_uring unavailable: the fan-out sends one frame per system call");
                        }
                        Ring::Unavailable
                    }
                };
            }
            // Out of the cell while in use: a ring that fails is not put back,
            // so the entries it never submitted are dropped with it, unsent.
            let Ring::Ready(mut uring) = std::mem::replace(&mut *ring, Ring::Unavailable) else {
                return 0;
            };
            let sent = send(&mut uring, chunk, results);
            match sent.failure {
                None => *ring = Ring::Ready(uring),
                Some(error) => {
                    tracing::warn!(%error, "io_uring failed: one send per listener from now on");
                }
            }
            sent.answered
        })
    }

    /// How a chunk went through the ring.
    struct Sent {
        /// The leading writes whose outcomes are in the results; the kernel
        /// never took the others.
        answered: usize,
        /// The ring itself failed: it is not to be entered again.
        failure: Option<io::Error>,
    }

    /// Pushes one send per write of `chunk`, submits them and reaps every
    /// completion, its outcome in `results` (appended, in order).
    ///
    /// Returns only when the kernel holds none of the sends it took. If the
    /// ring fails, those are cancelled (or waited for) and reaped; the kernel
    /// took a prefix of the queue, and the rest stays queued, unsubmitted, in
    /// a ring the caller must drop without entering it again.
    fn send(
        uring: &mut IoUring,
        chunk: &[(BorrowedFd<'_>, &[u8])],
        results: &mut Vec<io::Result<usize>>,
    ) -> Sent {
        let start = results.len();
        // Every send the kernel takes posts a completion that overwrites this.
        results.extend(
            chunk
                .iter()
                .map(|_| Err(io::Error::other("io_uring lost this send"))),
        );
        let outcomes = results.get_mut(start..).unwrap_or_default();
        let pushed = push(uring, chunk);
        // Completions not reaped yet: each a send the kernel may still hold
        // (or, after a failure, one it never took).
        let mut owed = pushed;
        let mut failure = None;
        while owed > 0 {
            owed = owed.saturating_sub(reap(uring, outcomes));
            if owed == 0 {
                break;
            }
            // MSG_DONTWAIT: a send that cannot go at once completes with
            // EAGAIN instead of waiting for room, so the wait is short.
            match submit_and_wait(uring, owed) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // The kernel consumes the queue in order: what is still
                    // queued is the tail of the chunk, and it never saw it.
                    let unsubmitted = uring.submission().len();
                    owed = owed.saturating_sub(unsubmitted);
                    settle(uring, owed, outcomes);
                    failure = Some(error);
                    owed = unsubmitted;
                    break;
                }
            }
        }
        let answered = pushed.saturating_sub(owed);
        results.truncate(start + answered);
        Sent { answered, failure }
    }

    /// Queues one send per write of `chunk`, in order; answers how many fit
    /// (all of them: [`send`] leaves the queue empty, and it holds [`BATCH`]).
    fn push(uring: &mut IoUring, chunk: &[(BorrowedFd<'_>, &[u8])]) -> usize {
        debug_assert!(chunk.len() <= BATCH);
        let mut queue = uring.submission();
        let mut pushed = 0;
        for (index, &(fd, bytes)) in chunk.iter().enumerate() {
            // A frame is far below 4 GiB; a larger one would be sent in part, and the rest queued.
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            let entry = opcode::Send::new(types::Fd(fd.as_raw_fd()), bytes.as_ptr(), len)
                .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                .build()
                .flags(entry_flags())
                .user_data(index as u64);
            // SAFETY: the kernel may use the socket and the buffer from its
            // submission until its completion is posted. Both are borrowed
            // (`BorrowedFd<'_>`, `&[u8]`) for the whole of `send_all`, and
            // nothing in `send` between this push and its last reap can
            // unwind. `send` returns only once it has reaped the completion
            // of every entry the kernel took, on success and failure alike
            // (`settle`); an entry the kernel never took stays in the queue
            // of a ring that `send_chunk` then drops without entering it
            // again, so it is never submitted.
            if unsafe { queue.push(&entry) }.is_err() {
                break;
            }
            pushed += 1;
        }
        pushed
    }

    /// Takes every posted completion into `outcomes` (indexed by user data);
    /// answers how many there were.
    fn reap(uring: &mut IoUring, outcomes: &mut [io::Result<usize>]) -> usize {
        let mut reaped = 0;
        for completion in uring.completion() {
            reaped += 1;
            let slot = usize::try_from(completion.user_data())
                .ok()
                .and_then(|index| outcomes.get_mut(index));
            if let Some(slot) = slot {
                *slot = outcome(completion.result());
            }
        }
        reaped
    }

    fn outcome(result: i32) -> io::Result<usize> {
        if result == -libc::ECANCELED {
            // Cancelled before it ran: not a byte went, as with an interrupted send.
            Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "send cancelled before it ran",
            ))
        } else if result < 0 {
            Err(io::Error::from_raw_os_error(-result))
        } else {
            Ok(result.unsigned_abs() as usize)
        }
    }

    /// After a failure of the ring: makes sure the `in_flight` sends the
    /// kernel took are over, and reaps them. Cancels them (those that have not
    /// run never will), then waits for every completion, submitting nothing.
    fn settle(uring: &mut IoUring, mut in_flight: usize, outcomes: &mut [io::Result<usize>]) {
        if in_flight == 0 {
            return;
        }
        // Sends that have not run yet never will (each completes as
        // cancelled); one already running finishes on its own. What makes
        // sure every send is over is the wait for its completion below, so
        // the answer does not matter: not found (all were over already), or
        // an error (kernels before 6.0 have no synchronous cancel), and then
        // waiting alone is short, as no send here waits for room.
        let _ = uring
            .submitter()
            .register_sync_cancel(None, CancelBuilder::any());
        loop {
            in_flight = in_flight.saturating_sub(reap(uring, outcomes));
            if in_flight == 0 {
                return;
            }
            match wait(uring, in_flight) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // The kernel may still read these buffers and write to
                    // these sockets, and nothing tells when it stops:
                    // returning would let the caller free them.
                    tracing::error!(%error, in_flight, "io_uring cannot be waited for while it holds sends: aborting");
                    std::process::abort();
                }
            }
        }
    }

    /// Waits for `want` completions without submitting anything.
    fn wait(uring: &IoUring, want: usize) -> io::Result<usize> {
        let want = u32::try_from(want).unwrap_or(u32::MAX);
        // SAFETY: `to_submit` is 0, so entries still queued stay unsubmitted;
        // no argument is passed (null, as `IoUring::submit_and_wait` does), so
        // the kernel reads no memory of ours; GETEVENTS only waits.
        unsafe {
            uring
                .submitter()
                .enter::<libc::sigset_t>(0, want, EnterFlags::GETEVENTS.bits(), None)
        }
    }

    /// `IoUring::submit_and_wait`, through the test's fault if one is set.
    fn submit_and_wait(uring: &IoUring, want: usize) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(fault) = FAULT.take() {
            return fault.strike(uring);
        }
        uring.submit_and_wait(want)
    }

    /// Flags of every send entry: none, but a test may have the kernel run
    /// them on its workers, so they are still in flight after the submit.
    fn entry_flags() -> squeue::Flags {
        #[cfg(test)]
        if FAULT.get().is_some_and(|fault| fault.on_workers) {
            return squeue::Flags::ASYNC;
        }
        squeue::Flags::empty()
    }

    /// A failure of the ring, made by a test: the next submit on this thread
    /// hands the kernel only the first `kernel_takes` queued sends, then fails.
    #[cfg(test)]
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Fault {
        pub(super) kernel_takes: u32,
        /// The sends are queued with `IOSQE_ASYNC`: the kernel's workers run
        /// them, so they are in flight when the submit fails, as a send the
        /// kernel chose to run later would be.
        pub(super) on_workers: bool,
    }

    #[cfg(test)]
    thread_local! {
        static FAULT: std::cell::Cell<Option<Fault>> = const { std::cell::Cell::new(None) };
    }

    #[cfg(test)]
    pub(super) fn fail_next_submit(fault: Fault) {
        FAULT.set(Some(fault));
    }

    #[cfg(test)]
    impl Fault {
        fn strike(self, uring: &IoUring) -> io::Result<usize> {
            // SAFETY: submits like `IoUring::submit`, only fewer entries (the
            // queue's first `kernel_takes`); `send` treats what the kernel
            // took as every submit (reaps or cancels it). No argument is
            // passed, so the kernel reads no memory of ours.
            unsafe {
                uring
                    .submitter()
                    .enter::<libc::sigset_t>(self.kernel_takes, 0, 0, None)
            }?;
            Err(io::Error::other("io_uring failure made by a test"))
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod uring {
    use std::io;
    use std::os::fd::BorrowedFd;

    pub(super) fn send_chunk(
        _: &[(BorrowedFd<'_>, &[u8])],
        _: &mut Vec<io::Result<usize>>,
    ) -> usize {
        0
    }

    #[cfg(test)]
    pub(super) fn forbid_on_this_thread() {}
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;

    /// A connected pair: (the side we send on, non-blocking; the peer).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let sender = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (peer, _) = listener.accept().expect("accept");
        sender.set_nonblocking(true).expect("non-blocking");
        (sender, peer)
    }

    #[test]
    fn one_batch_reports_each_socket_on_its_own_written_full_or_gone() {
        mixed_batch();
    }

    #[test]
    fn without_io_uring_the_same_batch_goes_one_send_at_a_time() {
        std::thread::spawn(|| {
            uring::forbid_on_this_thread();
            mixed_batch();
        })
        .join()
        .expect("the batch behaves the same without io_uring");
    }

    /// A batch of four: a reading socket, a full one, a reset one, the reading one again.
    fn mixed_batch() {
        let (ready, mut ready_peer) = pair();
        let (full, _full_peer) = pair();
        let (gone, gone_peer) = pair();
        // Kill `gone`: the peer closes with data unread, so the connection is reset.
        gone_peer.shutdown(Shutdown::Both).expect("shutdown");
        drop(gone_peer);
        std::thread::sleep(Duration::from_millis(50));
        // Provokes the reset, if not there yet.
        let _ = send_one(gone.as_fd(), b"x");
        // Fill `full` until it takes not one byte more.
        let chunk = vec![7u8; 64 * 1024];
        while send_one(full.as_fd(), &chunk).is_ok() {}
        while send_one(full.as_fd(), b"7").is_ok() {}

        let frame = b"id: 1\nevent: state\ndata: {}\n\n";
        let writes = [
            (ready.as_fd(), &frame[..]),
            (full.as_fd(), &frame[..]),
            (gone.as_fd(), &frame[..]),
            (ready.as_fd(), &frame[..]),
        ];
        let mut results = Vec::new();
        send_all(&writes, &mut results);
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().ok(), Some(&frame.len()));
        // A full socket pushes back: it takes nothing (EAGAIN), or at most a part.
        match &results[1] {
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::WouldBlock),
            Ok(taken) => assert!(*taken < frame.len(), "a full socket took the whole frame"),
        }
        assert!(
            results[2].is_err(),
            "a reset connection fails: {:?}",
            results[2]
        );
        assert_eq!(
            results[3].as_ref().ok(),
            Some(&frame.len()),
            "in order, after the others"
        );

        let mut got = vec![0u8; frame.len() * 2];
        ready_peer.read_exact(&mut got).expect("both frames arrive");
        assert_eq!(&got[..frame.len()], &frame[..]);
        assert_eq!(&got[frame.len()..], &frame[..]);
    }

    #[test]
    fn more_writes_than_a_batch_all_go_out_in_order() {
        let (sender, mut peer) = pair();
        let frames: Vec<Vec<u8>> = (0..BATCH * 2 + 3)
            .map(|i| format!("{i};").into_bytes())
            .collect();
        let writes: Vec<(BorrowedFd<'_>, &[u8])> =
            frames.iter().map(|f| (sender.as_fd(), &f[..])).collect();
        let mut results = Vec::new();
        send_all(&writes, &mut results);
        assert_eq!(results.len(), frames.len());
        assert!(results
            .iter()
            .zip(&frames)
            .all(|(r, f)| r.as_ref().ok() == Some(&f.len())));
        drop(writes);
        drop(sender);
        let mut got = String::new();
        peer.read_to_string(&mut got).expect("read");
        let want: String = (0..frames.len()).map(|i| format!("{i};")).collect();
        assert_eq!(got, want);
    }

    /// Sockets in one failing batch.
    const SOCKETS: usize = 64;
    /// Each socket's frame: large enough that a send takes a while, small
    /// enough for an idle socket's buffer.
    const FRAME: usize = 16 * 1024;

    /// The ring fails in the middle of a batch, after the kernel took none,
    /// half or all of its sends, and runs those on its workers (so they are
    /// still in flight when the submit fails). When `send_all` returns the
    /// kernel holds nothing of the batch: the buffers are overwritten, the
    /// sockets closed and their fd numbers taken by new sockets, and then
    /// each peer has received exactly what its outcome says, from the
    /// original buffer, and nothing reaches the new sockets. A send the
    /// kernel never took goes whole, one at a time.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_ring_failing_mid_batch_holds_nothing_once_the_call_returns() {
        for kernel_takes in [0, SOCKETS / 2, SOCKETS] {
            std::thread::spawn(move || failing_batch(kernel_takes))
                .join()
                .unwrap_or_else(|_| panic!("kernel took {kernel_takes} sends"));
        }
    }

    #[cfg(target_os = "linux")]
    fn failing_batch(kernel_takes: usize) {
        let pairs: Vec<(UnixStream, UnixStream)> = (0..SOCKETS)
            .map(|_| {
                let (sender, peer) = UnixStream::pair().expect("socketpair");
                sender.set_nonblocking(true).expect("non-blocking");
                peer.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                (sender, peer)
            })
            .collect();
        let fill = |index: usize| b'a' + (index % 26) as u8;
        let mut frames: Vec<Vec<u8>> = (0..SOCKETS).map(|i| vec![fill(i); FRAME]).collect();
        let writes: Vec<(BorrowedFd<'_>, &[u8])> = pairs
            .iter()
            .zip(&frames)
            .map(|((sender, _), frame)| (sender.as_fd(), &frame[..]))
            .collect();

        uring::fail_next_submit(uring::Fault {
            kernel_takes: kernel_takes as u32,
            on_workers: true,
        });
        let mut results = Vec::new();
        send_all(&writes, &mut results);
        drop(writes);

        // The call is over: the buffers change, the sockets close, and new
        // sockets take their numbers.
        for frame in &mut frames {
            frame.fill(b'#');
        }
        let peers: Vec<UnixStream> = pairs.into_iter().map(|(_, peer)| peer).collect();
        let newcomers: Vec<(UnixStream, UnixStream)> = (0..SOCKETS)
            .map(|_| UnixStream::pair().expect("socketpair"))
            .collect();

        assert_eq!(results.len(), SOCKETS);
        for (index, (mut peer, outcome)) in peers.into_iter().zip(&results).enumerate() {
            let mut got = Vec::new();
            // Ends when the last holder of the socket lets go, the kernel included.
            peer.read_to_end(&mut got)
                .expect("the peer reads to the end");
            let accounted = match outcome {
                Ok(sent) => *sent,
                Err(_) => 0,
            };
            assert_eq!(
                got.len(),
                accounted,
                "socket {index}: received what its outcome says ({outcome:?})"
            );
            assert!(
                got.iter().all(|&byte| byte == fill(index)),
                "socket {index}: only bytes of its own frame, read before the call returned"
            );
            if index >= kernel_takes {
                assert_eq!(
                    outcome.as_ref().ok(),
                    Some(&FRAME),
                    "socket {index}: never handed to the kernel, sent whole one at a time"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        for (_, peer) in &newcomers {
            peer.set_nonblocking(true).expect("non-blocking");
            let mut byte = [0u8];
            assert_eq!(
                (&*peer).read(&mut byte).map_err(|error| error.kind()),
                Err(io::ErrorKind::WouldBlock),
                "nothing reaches a socket that took a closed one's number"
            );
        }
    }
}
