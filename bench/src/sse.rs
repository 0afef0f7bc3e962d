//! An incremental Server-Sent Events parser that keeps only what the tool checks.
//!
//! Bytes are scanned where they lie in the read buffer: a complete line is parsed
//! in place, and only a line split across two reads is copied (into a small carry
//! buffer that is reused). A message keeps its numeric `id`, its event name as a
//! [`Kind`], and the `"version":N` found in its data (nchan messages carry the
//! sequence number there, since nchan's own ids are `time:tag`).
//!
//! Lines end in `\n` or `\r\n` (what syncroom and nchan write); a lone `\r` as a
//! line end is not supported.

use std::io;

/// The longest line accepted, so a broken server cannot grow memory without bound.
const MAX_LINE: usize = 1 << 20;

/// The event names the tool tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// No `event:` field (nchan's messages).
    #[default]
    Message,
    Snapshot,
    State,
    Presence,
    Closed,
    Other,
}

impl Kind {
    fn of(name: &[u8]) -> Kind {
        match name {
            b"snapshot" => Kind::Snapshot,
            b"state" => Kind::State,
            b"presence" => Kind::Presence,
            b"closed" => Kind::Closed,
            b"message" => Kind::Message,
            _ => Kind::Other,
        }
    }
}

/// One dispatched message, as far as the tool cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Message {
    /// The `id:` as a number, when it is one.
    pub id: Option<u64>,
    pub kind: Kind,
    /// The first `"version":N` in the data.
    pub data_version: Option<u64>,
    /// Some field was seen since the last blank line.
    seen: bool,
}

#[derive(Debug, Default)]
pub struct Parser {
    /// The start of a line that the previous read cut off.
    carry: Vec<u8>,
    message: Message,
    /// Comment lines (`: keepalive`, nchan's `: hi`).
    pub comments: u64,
}

impl Parser {
    /// Parses `input`, calling `on_message` for every complete message in it.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        on_message: &mut impl FnMut(&Message),
    ) -> io::Result<()> {
        let Parser {
            carry,
            message,
            comments,
        } = self;
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            if carry.is_empty() {
                line(message, comments, &input[..end], on_message);
            } else {
                carry.extend_from_slice(&input[..end]);
                line(message, comments, carry, on_message);
                carry.clear();
            }
            input = &input[end + 1..];
        }
        if carry.len() + input.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an SSE line longer than 1 MiB",
            ));
        }
        carry.extend_from_slice(input);
        Ok(())
    }
}

fn line(
    message: &mut Message,
    comments: &mut u64,
    line: &[u8],
    on_message: &mut impl FnMut(&Message),
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        if message.seen {
            on_message(message);
        }
        *message = Message::default();
        return;
    }
    if line[0] == b':' {
        *comments += 1;
        return;
    }
    let (field, value) = match line.iter().position(|&b| b == b':') {
        Some(colon) => {
            let value = &line[colon + 1..];
            (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &b""[..]),
    };
    match field {
        b"id" => {
            message.id = parse_u64(value);
            message.seen = true;
        }
        b"event" => {
            message.kind = Kind::of(value);
            message.seen = true;
        }
        b"data" => {
            if message.data_version.is_none() {
                message.data_version = version_in(value);
            }
            message.seen = true;
        }
        // `retry:` and unknown fields do not make a message.
        _ => {}
    }
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// The number after the first `"version":` in a JSON text, without parsing it all.
pub fn version_in(json: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"version\":";
    let at = json.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &json[at..];
    let rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    parse_u64(&rest[..digits])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(pieces: &[&[u8]]) -> (Vec<Message>, u64) {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for piece in pieces {
            parser.feed(piece, &mut |m: &Message| out.push(*m)).unwrap();
        }
        (out, parser.comments)
    }

    const SYNCROOM: &[u8] = b"retry: 2500\n\nid: 7\nevent: snapshot\ndata: {\"room_id\":\"b0\",\"version\":7}\n\n: keepalive\n\nevent: presence\ndata: {\"listeners\":3}\n\nid: 8\r\nevent: state\r\ndata: {\"version\":8,\"cause\":\"seek\"}\r\n\r\n";

    #[test]
    fn syncroom_frames_parse_across_every_split() {
        for split in 0..SYNCROOM.len() {
            let (messages, comments) = parse_all(&[&SYNCROOM[..split], &SYNCROOM[split..]]);
            assert_eq!(comments, 1);
            let summary: Vec<_> = messages.iter().map(|m| (m.id, m.kind)).collect();
            assert_eq!(
                summary,
                [
                    (Some(7), Kind::Snapshot),
                    (None, Kind::Presence),
                    (Some(8), Kind::State)
                ],
                "split at {split}"
            );
            assert_eq!(messages[2].data_version, Some(8));
        }
    }

    #[test]
    fn nchan_messages_carry_the_sequence_in_their_data() {
        let (messages, comments) = parse_all(&[
            b": hi\n\nid: 1795323149:0\ndata: {\"version\":1,\"x\":2}\n\nid: 1795323149:1\ndata: {\"version\": 2}\n\n",
        ]);
        assert_eq!(comments, 1);
        let summary: Vec<_> = messages
            .iter()
            .map(|m| (m.id, m.kind, m.data_version))
            .collect();
        assert_eq!(
            summary,
            [
                (None, Kind::Message, Some(1)),
                (None, Kind::Message, Some(2))
            ]
        );
    }

    #[test]
    fn odd_numbers_are_no_numbers() {
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
        assert_eq!(version_in(b"{\"version\":-1}"), None);
        assert_eq!(version_in(b"{}"), None);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = Parser::default();
        let big = vec![b'x'; MAX_LINE + 1];
        assert!(parser.feed(&big, &mut |_: &Message| {}).is_err());
    }
}
