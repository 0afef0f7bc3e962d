//! Getting encoded frames to listeners' sockets: the direct fan-out that writes
//! to caught-up listeners itself, and the batched sends it uses. Everything here
//! touches file descriptors; every `unsafe` block of the crate lives in this folder.

pub mod fanout;
pub(crate) mod send_batch;
pub(crate) mod spread;
