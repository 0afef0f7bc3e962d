//! Stream tokens: proof that a request comes from a page holding a live event
//! stream of a room.
//!
//! Reports a page makes about its own playback (drift, readiness) must count
//! once per listening page, not once per address: forty listeners behind one
//! NAT are forty listeners. So each stream gets an id and a token when it opens
//! (the id-less `hello` event, written on every connection, resumed ones too),
//! and a report names its stream by that token.
//!
//! A token is `<stream id>.<expires_at>.<mac>`: the stream's id, the server
//! Unix ms after which it no longer counts (the longest a stream lives, plus a
//! grace), and an HMAC-SHA256 over the room id, the stream id and the expiry,
//! truncated to 128 bits. It is checked without any lookup, so any node of a
//! cluster verifies a token another node issued: in Redis mode the nodes agree
//! on one key at start-up ([`crate::actor::port::SharedRooms::stream_key`]).

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a token was refused. A missing token is `401 unauthorized`; any other
/// refusal is `403 forbidden` (see [`super::ApiError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("`stream_token` is required: send the one from the stream's `hello` event")]
    Missing,
    #[error("`stream_token` is not valid for this room")]
    Invalid,
    #[error("`stream_token` has expired: send the one from the stream's newest `hello` event")]
    Expired,
    /// A moderator kicked the stream: its token counts for nothing any more.
    #[error("this stream was kicked")]
    Kicked,
}

/// How long a token outlives the longest stream: a report sent just before its
/// stream ended at its maximum age still counts.
pub const TOKEN_GRACE: Duration = Duration::from_secs(60);
/// The bytes of the MAC a token carries (128 bits).
const MAC_BYTES: usize = 16;
/// The longest token [`StreamTokens::verify`] reads: longer input is refused
/// before any parsing.
pub const MAX_TOKEN_CHARS: usize = 128;

/// The id of one event stream (one connection), written as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(u128);

impl StreamId {
    /// A new, random id.
    pub fn random() -> Self {
        StreamId(uuid::Uuid::new_v4().as_u128())
    }

    fn parse(text: &str) -> Option<Self> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(StreamId)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({self})")
    }
}

impl serde::Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A token, freshly issued: what the `hello` event carries.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Hello)]
pub struct IssuedToken {
    /// This stream's id: 32 hex digits, new on every connection.
    #[schema(value_type = String)]
    pub stream: StreamId,
    /// Proves a report comes from this stream of this room; send it as is.
    pub stream_token: String,
    /// Server Unix ms after which the token no longer counts.
    pub expires_at: i64,
}

/// Issues and checks stream tokens with one key.
pub struct StreamTokens {
    key: [u8; 32],
    /// How long a token counts: the longest a stream lives plus [`TOKEN_GRACE`].
    lifetime_ms: i64,
}

impl StreamTokens {
    /// Tokens with `key` that count for `max_stream_age` plus [`TOKEN_GRACE`].
    pub fn new(key: [u8; 32], max_stream_age: Duration) -> Self {
        let lifetime = max_stream_age + TOKEN_GRACE;
        StreamTokens {
            key,
            lifetime_ms: i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// A token for a new stream of `room_id`, opened at `now_ms`.
    pub fn issue(&self, room_id: &str, now_ms: i64) -> IssuedToken {
        let stream = StreamId::random();
        let expires_at = now_ms.saturating_add(self.lifetime_ms);
        let mac = self
            .mac(room_id, stream, expires_at)
            .finalize()
            .into_bytes();
        let token = format!("{stream}.{expires_at}.{}", hex::encode(&mac[..MAC_BYTES]));
        IssuedToken {
            stream,
            stream_token: token,
            expires_at,
        }
    }

    /// The stream `token` was issued to, if it was issued for `room_id` by a
    /// node holding this key and has not expired at `now_ms`.
    pub fn verify(&self, room_id: &str, token: &str, now_ms: i64) -> Result<StreamId, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let invalid = || TokenError::Invalid;
        if token.len() > MAX_TOKEN_CHARS {
            return Err(invalid());
        }
        let mut parts = token.split('.');
        let (Some(stream), Some(expires_at), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let stream = StreamId::parse(stream).ok_or_else(invalid)?;
        // Only the digits the server writes: no sign, no leading spaces.
        if expires_at.is_empty() || !expires_at.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let expires_at: i64 = expires_at.parse().map_err(|_| invalid())?;
        let mut mac_bytes = [0u8; MAC_BYTES];
        hex::decode_to_slice(mac, &mut mac_bytes).map_err(|_| invalid())?;
        // Compared in constant time, so the MAC cannot be guessed byte by byte.
        self.mac(room_id, stream, expires_at)
            .verify_truncated_left(&mac_bytes)
            .map_err(|_| invalid())?;
        if now_ms > expires_at {
            return Err(TokenError::Expired);
        }
        Ok(stream)
    }

    fn mac(&self, room_id: &str, stream: StreamId, expires_at: i64) -> Hmac<Sha256> {
        // Infallible: HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        // Length-prefixed, so no two (room, stream, expiry) read the same.
        mac.update(&(room_id.len() as u64).to_be_bytes());
        mac.update(room_id.as_bytes());
        mac.update(&stream.0.to_be_bytes());
        mac.update(&expires_at.to_be_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn tokens() -> StreamTokens {
        StreamTokens::new([7; 32], Duration::from_secs(1800))
    }

    #[test]
    fn a_token_names_its_stream_in_its_room_until_it_expires() {
        let tokens = tokens();
        let issued = tokens.issue("party", NOW);
        assert_eq!(issued.expires_at, NOW + 1_860_000);
        assert_eq!(
            tokens.verify("party", &issued.stream_token, NOW + 5),
            Ok(issued.stream)
        );
        assert_eq!(
            tokens.verify("party", &issued.stream_token, issued.expires_at),
            Ok(issued.stream)
        );
        assert_eq!(
            tokens.verify("party", &issued.stream_token, issued.expires_at + 1),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn another_node_with_the_same_key_verifies_it() {
        let issued = tokens().issue("party", NOW);
        assert_eq!(
            tokens().verify("party", &issued.stream_token, NOW),
            Ok(issued.stream)
        );
        let stranger = StreamTokens::new([8; 32], Duration::from_secs(1800));
        assert!(stranger.verify("party", &issued.stream_token, NOW).is_err());
    }

    #[test]
    fn forged_altered_or_foreign_tokens_are_refused() {
        let tokens = tokens();
        let issued = tokens.issue("party", NOW);
        let token = issued.stream_token.as_str();
        let (head, mac) = token.rsplit_once('.').unwrap();
        let (stream, expires) = head.split_once('.').unwrap();
        let flipped_mac = format!("{head}.{}", mac.replace(&mac[..1], "x"));
        let later = format!("{stream}.{}.{mac}", expires.parse::<i64>().unwrap() + 1);
        let other_stream = format!("{}.{expires}.{mac}", StreamId::random());
        for (case, bad) in [
            ("another room", ("other", token.to_string())),
            ("altered mac", ("party", flipped_mac)),
            ("later expiry", ("party", later)),
            ("another stream", ("party", other_stream)),
            ("short mac", ("party", format!("{head}.{}", &mac[..30]))),
            (
                "signed expiry",
                ("party", format!("{stream}.+{expires}.{mac}")),
            ),
            ("two parts", ("party", format!("{stream}.{mac}"))),
            ("four parts", ("party", format!("{token}.00"))),
            ("not hex", ("party", format!("{head}.{}", "zz".repeat(16)))),
            ("too long", ("party", "a".repeat(MAX_TOKEN_CHARS + 1))),
            ("unicode", ("party", "é".repeat(40))),
        ] {
            let (room, bad) = bad;
            assert_eq!(
                tokens.verify(room, &bad, NOW),
                Err(TokenError::Invalid),
                "{case}: {bad:?}"
            );
        }
        assert_eq!(tokens.verify("party", "", NOW), Err(TokenError::Missing));
    }

    #[test]
    fn stream_ids_are_32_hex_digits() {
        let id = StreamId::random();
        assert_eq!(id.to_string().len(), 32);
        assert_eq!(StreamId::parse(&id.to_string()), Some(id));
        assert_eq!(StreamId::parse("+0000000000000000000000000000001"), None);
    }
}
