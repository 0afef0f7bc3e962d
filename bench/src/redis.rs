//! What a Redis server shared by syncroom nodes did: its `total_commands_processed`
//! (INFO stats), read over one plain connection with an inline command, so the
//! tool needs no Redis client.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest INFO answer read.
const MAX_INFO_BYTES: usize = 64 * 1024;

/// Redis's count of commands processed since it started.
pub async fn commands_processed(addr: SocketAddr) -> Result<u64, String> {
    let fail = |why: String| format!("redis at {addr}: {why}");
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| fail(e.to_string()))?;
    stream
        .write_all(b"INFO stats\r\n")
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if read == 0 || answer.len() > MAX_INFO_BYTES {
            return Err(fail("INFO answer incomplete".into()));
        }
        answer.extend_from_slice(&chunk[..read]);
        if let Some(count) = total_commands(&answer) {
            return Ok(count);
        }
    }
}

/// The count in a (possibly partial) INFO answer, once its line is complete.
fn total_commands(answer: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(answer).ok()?;
    let (_, rest) = text.split_once("total_commands_processed:")?;
    let (number, _) = rest.split_once("\r\n")?;
    number.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_count_once_its_line_is_whole() {
        let answer =
            b"$60\r\n# Stats\r\ntotal_connections_received:3\r\ntotal_commands_processed:1234\r\n";
        assert_eq!(total_commands(answer), Some(1234));
        assert_eq!(
            total_commands(b"$60\r\n# Stats\r\ntotal_commands_processed:12"),
            None
        );
    }
}
