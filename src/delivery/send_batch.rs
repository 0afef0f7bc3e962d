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
//! Each thread keeps its own small ring, made on first use. Where io_uring is
//! not to be had (another OS, an old kernel, a sandbox that forbids it, such
//! as the shipped systemd unit's `SystemCallFilter=@system-service`), the same
//! batch is sent one `send` at a time, and the log says so once.

use std::io;
use std::os::fd::RawFd;

/// Most sends submitted at once (and the ring's size).
pub(crate) const BATCH: usize = 128;

/// Sends `writes[i].1` on socket `writes[i].0`, each non-blocking, and puts
/// each outcome (bytes taken, or the error) in `results`, in order.
///
/// The caller keeps every socket open and every buffer alive until this returns.
pub(crate) fn send_all(writes: &[(RawFd, &[u8])], results: &mut Vec<io::Result<usize>>) {
    results.clear();
    for chunk in writes.chunks(BATCH) {
        if !uring::send_chunk(chunk, results) {
            results.extend(chunk.iter().map(|&(fd, bytes)| send_one(fd, bytes)));
        }
    }
}

/// One non-blocking `send` (no SIGPIPE: a closed peer is an error, not a signal).
#[cfg(target_os = "linux")]
fn send_one(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is a live buffer of `bytes.len()` bytes, and the caller
    // keeps `fd` open for the call.
    let sent = unsafe {
        libc::send(
            fd,
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

#[cfg(not(target_os = "linux"))]
fn send_one(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;
    // SAFETY: the caller keeps `fd` open; ManuallyDrop never closes it. The
    // socket is non-blocking (tokio made it so).
    let mut stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    stream.write(bytes)
}

#[cfg(target_os = "linux")]
mod uring {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    use io_uring::{opcode, types, IoUring};

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

    /// Sends `chunk` (at most [`BATCH`]) through this thread's ring and appends
    /// the outcomes; `false` if there is no ring (nothing was sent).
    pub(super) fn send_chunk(
        chunk: &[(RawFd, &[u8])],
        results: &mut Vec<io::Result<usize>>,
    ) -> bool {
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
            let Ring::Ready(uring) = &mut *ring else {
                return false;
            };
            if let Err(error) = submit(uring, chunk, results) {
                // The ring itself failed (not a socket). The sends it took may
                // have gone out: those sockets are given up (their listeners
                // reconnect and resume), never written twice.
                tracing::warn!(%error, "io_uring failed: one send per listener from now on");
                *ring = Ring::Unavailable;
            }
            true
        })
    }

    /// Appends one outcome per entry of `chunk`; on a failure of the ring,
    /// the entries it did not report get that error.
    fn submit(
        uring: &mut IoUring,
        chunk: &[(RawFd, &[u8])],
        results: &mut Vec<io::Result<usize>>,
    ) -> io::Result<()> {
        debug_assert!(chunk.len() <= BATCH);
        let start = results.len();
        results.extend(
            chunk
                .iter()
                .map(|_| Err(io::Error::other("io_uring failed"))),
        );
        let mut pushed = 0;
        {
            let mut queue = uring.submission();
            for (index, &(fd, bytes)) in chunk.iter().enumerate() {
                // A frame is far below 4 GiB; a larger one would be sent in part, and the rest queued.
                let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                let entry = opcode::Send::new(types::Fd(fd), bytes.as_ptr(), len)
                    .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(index as u64);
                // SAFETY: the buffer and the socket outlive the submission: this
                // function waits for every completion before it returns.
                if unsafe { queue.push(&entry) }.is_err() {
                    break;
                }
                pushed += 1;
            }
        }
        // MSG_DONTWAIT: a send that cannot go at once completes with EAGAIN
        // instead of waiting for room, so every completion is posted during
        // this call and the wait ends at once.
        let waited = loop {
            match uring.submit_and_wait(pushed) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        for completion in uring.completion() {
            let outcome = completion.result();
            let slot = usize::try_from(completion.user_data())
                .ok()
                .and_then(|index| results.get_mut(start + index));
            if let Some(slot) = slot {
                *slot = if outcome < 0 {
                    Err(io::Error::from_raw_os_error(-outcome))
                } else {
                    Ok(outcome.unsigned_abs() as usize)
                };
            }
        }
        waited?;
        if pushed < chunk.len() {
            return Err(io::Error::other("io_uring submission queue full"));
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod uring {
    use std::io;
    use std::os::fd::RawFd;

    pub(super) fn send_chunk(_: &[(RawFd, &[u8])], _: &mut Vec<io::Result<usize>>) -> bool {
        false
    }

    #[cfg(test)]
    pub(super) fn forbid_on_this_thread() {}
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

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
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = send_one(gone.as_raw_fd(), b"x"); // provokes the reset, if not there yet
                                                  // Fill `full` until it takes not one byte more.
        let chunk = vec![7u8; 64 * 1024];
        while send_one(full.as_raw_fd(), &chunk).is_ok() {}
        while send_one(full.as_raw_fd(), b"7").is_ok() {}

        let frame = b"id: 1\nevent: state\ndata: {}\n\n";
        let writes = [
            (ready.as_raw_fd(), &frame[..]),
            (full.as_raw_fd(), &frame[..]),
            (gone.as_raw_fd(), &frame[..]),
            (ready.as_raw_fd(), &frame[..]),
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
        let writes: Vec<(RawFd, &[u8])> = frames
            .iter()
            .map(|f| (sender.as_raw_fd(), &f[..]))
            .collect();
        let mut results = Vec::new();
        send_all(&writes, &mut results);
        assert_eq!(results.len(), frames.len());
        assert!(results
            .iter()
            .zip(&frames)
            .all(|(r, f)| r.as_ref().ok() == Some(&f.len())));
        drop(sender);
        let mut got = String::new();
        peer.read_to_string(&mut got).expect("read");
        let want: String = (0..frames.len()).map(|i| format!("{i};")).collect();
        assert_eq!(got, want);
    }
}
