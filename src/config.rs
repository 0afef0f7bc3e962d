//! The server's configuration: one clap struct, every flag also readable from
//! `SYNCROOM_<FLAG>`. The doc comments below *are* the `--help` text, so they are
//! written for an operator, not for the next programmer.
//!
//! Every number that bounds memory or time lives here with a name and a default,
//! so it can be tuned without reading the code.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Longest `--start-lead-ms`.
pub const MAX_START_LEAD_MS: u64 = 10_000;

/// Most chat messages `--chat-history` may keep per room.
pub const MAX_CHAT_HISTORY: u32 = 1_000;

/// The YouTube Data API's own address.
pub const DEFAULT_YOUTUBE_API_URL: &str = "https://www.googleapis.com/youtube/v3";

/// A secret from the command line: its `Debug` (and so any dump of the
/// configuration) never shows it; [`ApiKey::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// The key itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<hidden>)")
    }
}

/// syncroom: synchronized media rooms over Server-Sent Events.
///
/// Hosts control playback with small POSTs; every listener follows one event stream.
/// Each flag can also be set through the environment variable shown with it.
#[derive(Debug, Clone, Parser)]
#[command(name = "syncroom", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on (HTTP, or HTTPS with `--tls-cert`): `IP:PORT` (`0.0.0.0:8080`, `[::1]:8080`) or `HOST:PORT`
    /// (`localhost:8080`), whose name is resolved at start and every address it names is
    /// listened on (each is logged). The demo page is served at its root.
    #[arg(long, env = "SYNCROOM_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: ListenAddr,

    /// Serve HTTPS on `--listen` with this certificate chain (PEM file, leaf first), offering
    /// HTTP/2 and HTTP/1.1 (ALPN `h2`, `http/1.1`); needs `--tls-key`. Default: plain HTTP.
    #[arg(
        long,
        env = "SYNCROOM_TLS_CERT",
        requires = "tls_key",
        value_name = "PEM"
    )]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key (PEM file: PKCS#8, PKCS#1 or SEC1) of `--tls-cert`; needs `--tls-cert`.
    #[arg(
        long,
        env = "SYNCROOM_TLS_KEY",
        requires = "tls_cert",
        value_name = "PEM"
    )]
    pub tls_key: Option<std::path::PathBuf>,

    /// Worker threads serving connections and rooms; a room of 2,048 listeners or more
    /// also writes each event over this many threads. Default: one per CPU core.
    #[arg(long, env = "SYNCROOM_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    /// Keep rooms (state, version, queue, host token hash) in this directory so they survive a
    /// restart. It must exist and be writable (rooms go in `DIR/rooms/`). Default: rooms live
    /// in memory only.
    #[arg(long, env = "SYNCROOM_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,

    /// Serve the audio and video files under this directory at `/media/{path}` (byte ranges,
    /// validators) and list them at `/api/media`, so rooms can play them (`media_url`). With
    /// `--redis`, give every node the same directory. Default: no media files are served.
    #[arg(long, env = "SYNCROOM_MEDIA_DIR")]
    pub media_dir: Option<std::path::PathBuf>,

    /// Ask the YouTube Data API v3 for each YouTube item's title, channel and duration, with
    /// this API key (a Google Cloud project with the YouTube Data API v3 enabled). Each video
    /// looked up costs one unit of the key's daily quota, once: answers are cached. An API error
    /// or a spent quota leaves items as they were given, and the log says why (never the key).
    /// Default: none (YouTube items keep what the adder gave).
    #[arg(
        long,
        env = "SYNCROOM_YOUTUBE_API_KEY",
        hide_env_values = true,
        value_parser = parse_api_key,
        value_name = "KEY"
    )]
    pub youtube_api_key: Option<ApiKey>,

    /// Where the YouTube Data API v3 answers, for `--youtube-api-key`: an `http://` or
    /// `https://` base URL (a proxy, or a stand-in for tests).
    #[arg(long, env = "SYNCROOM_YOUTUBE_API_URL", default_value = DEFAULT_YOUTUBE_API_URL, value_parser = parse_api_url, value_name = "URL")]
    pub youtube_api_url: url::Url,

    /// Share rooms with other nodes through Redis: `redis://[:PASSWORD@]HOST:PORT[/DB]` or
    /// `rediss://` for TLS. Every node given the same Redis serves every room. Default: rooms
    /// live in this process only.
    #[arg(
        long,
        env = "SYNCROOM_REDIS",
        conflicts_with = "data_dir",
        hide_env_values = true
    )]
    pub redis: Option<String>,

    /// Share rooms with other nodes through a Redis Cluster (Redis 7 or later): the URL of a
    /// seed node, `redis://[:PASSWORD@]HOST:PORT` or `rediss://`; repeat the flag or separate
    /// URLs by commas to give more seeds (any one reachable seed finds the others). Every
    /// node given the same cluster serves every room; a room's keys and feed live on one
    /// shard. Exclusive with `--redis`.
    #[arg(
        long,
        env = "SYNCROOM_REDIS_CLUSTER",
        value_delimiter = ',',
        conflicts_with_all = ["redis", "data_dir"],
        hide_env_values = true,
        value_name = "URL"
    )]
    pub redis_cluster: Vec<String>,

    /// With `--redis` or `--redis-cluster`: longest wait for Redis (seconds) before a request is
    /// answered `503 unavailable`, having changed nothing. At start-up, the bound of each attempt to
    /// reach Redis: a node started before its Redis logs a warning per failed attempt and
    /// tries again (pauses doubling from 0.25 s to 10 s) until Redis answers or SIGTERM/SIGINT
    /// stops it; a malformed URL fails at once.
    #[arg(long, env = "SYNCROOM_REDIS_TIMEOUT", default_value = "2", value_parser = parse_positive_secs)]
    pub redis_timeout: Duration,

    /// With `--redis` or `--redis-cluster`: after each commit, wait (`WAIT`) until this many
    /// replicas of the room's primary have it, for what is left of `--redis-timeout`. The
    /// command succeeds either way (a commit cannot be withdrawn); a shortfall is logged. See
    /// docs/API.md for what each setting promises. Default 0: no wait.
    #[arg(long, env = "SYNCROOM_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// Send a `: keepalive` comment on an event stream idle this long (seconds, decimals allowed).
    #[arg(long, env = "SYNCROOM_KEEPALIVE", default_value = "15", value_parser = parse_positive_secs)]
    pub keepalive: Duration,

    /// Replayable events kept per room for `Last-Event-ID` resume.
    #[arg(long, env = "SYNCROOM_HISTORY", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub history: u32,

    /// Bytes of replayable events kept per room for `Last-Event-ID` resume, whatever their count
    /// (with `--redis` or `--redis-cluster`, in Redis too): a resume beyond what is kept gets a
    /// snapshot.
    #[arg(long, env = "SYNCROOM_HISTORY_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub history_bytes: u64,

    /// Close a room (`closed`, reason `expired`) after this long with no listeners and no commands (seconds); persistent rooms never expire.
    #[arg(long, env = "SYNCROOM_ROOM_TTL", default_value = "3600", value_parser = parse_secs)]
    pub room_ttl: Duration,

    /// End an event stream after this age (seconds, jittered down by up to 15 %); clients reconnect and resume.
    #[arg(long, env = "SYNCROOM_MAX_STREAM_AGE", default_value = "1800", value_parser = parse_positive_secs)]
    pub max_stream_age: Duration,

    /// Base reconnection delay sent in each stream's `retry:` line (milliseconds); each stream adds up to as much again at random.
    #[arg(long, env = "SYNCROOM_RETRY_MS", default_value_t = 2000)]
    pub retry_ms: u32,

    /// Most open event streams on this node; past it new streams get `503 unavailable`.
    /// Default: the open-file limit less a reserve for everything else.
    #[arg(long, env = "SYNCROOM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most event streams one client address may hold open at once (`429` past it).
    #[arg(long, env = "SYNCROOM_MAX_STREAMS_PER_CLIENT", default_value_t = 100)]
    pub max_streams_per_client: usize,

    /// Most listeners in one room on this node (`503` past it). Default: no limit but `--max-connections`.
    #[arg(long, env = "SYNCROOM_MAX_LISTENERS_PER_ROOM")]
    pub max_listeners_per_room: Option<usize>,

    /// Most rooms on this node, or in the whole cluster with `--redis` or `--redis-cluster`
    /// (`503` on creation past it; see docs/API.md for what a cluster-wide count guarantees).
    #[arg(long, env = "SYNCROOM_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Rooms each client address may create per minute (sustained); separate from commands.
    /// Load tests that create many rooms from one address raise it.
    #[arg(long, env = "SYNCROOM_ROOMS_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub rooms_per_minute: u32,

    /// Rooms a client address may create at once before the per-minute rate applies.
    #[arg(long, env = "SYNCROOM_ROOMS_BURST", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rooms_burst: u32,

    /// Most open rooms created from one client address (`429` on creation past it, until one
    /// of them is deleted or expires); counted over the whole cluster with
    /// `--redis` or `--redis-cluster`.
    #[arg(long, env = "SYNCROOM_MAX_ROOMS_PER_CLIENT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms_per_client: u32,

    /// Most persistent rooms (`persistent: true`: exempt from --room-ttl, kept until deleted),
    /// on this node, or over the whole cluster with `--redis` or `--redis-cluster` (`429` past it). Each still counts
    /// toward its creator's --max-rooms-per-client for as long as it lives.
    #[arg(long, env = "SYNCROOM_MAX_PERSISTENT_ROOMS", default_value_t = 100)]
    pub max_persistent_rooms: u32,

    /// Commands, deletions, host token resets and readiness reports each client address may
    /// send per minute (sustained).
    #[arg(long, env = "SYNCROOM_COMMANDS_PER_MINUTE", default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..))]
    pub commands_per_minute: u32,

    /// Commands a client address may send at once before the per-minute rate applies.
    #[arg(long, env = "SYNCROOM_COMMANDS_BURST", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub commands_burst: u32,

    /// Take the client address from the last `X-Forwarded-For` entry (set this only behind a proxy that appends it).
    #[arg(long, env = "SYNCROOM_TRUST_PROXY")]
    pub trust_proxy: bool,

    /// Let pages from this origin call the API from the browser (CORS); repeat for several, or `*` for any.
    /// Default: none (same origin only).
    #[arg(long = "cors-origin", env = "SYNCROOM_CORS_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// Events a listener may fall behind before it is resynchronized with a fresh snapshot.
    #[arg(long, env = "SYNCROOM_LISTENER_BUFFER", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub listener_buffer: u32,

    /// Most items in one room's queue.
    #[arg(long, env = "SYNCROOM_MAX_QUEUE", default_value_t = 500)]
    pub max_queue: usize,

    /// Most co-hosts one room may have.
    #[arg(long, env = "SYNCROOM_MAX_COHOSTS", default_value_t = crate::room::cohosts::DEFAULT_MAX_COHOSTS)]
    pub max_cohosts: usize,

    /// Chat messages each room keeps for late joiners (sent with the snapshot); 0 keeps none.
    #[arg(long, env = "SYNCROOM_CHAT_HISTORY", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=MAX_CHAT_HISTORY as i64))]
    pub chat_history: u32,

    /// How often each listener's page reports its drift (`POST /api/rooms/{id}/sync`), in seconds,
    /// 1 to 60. A report counts for three intervals; a stream may report at most once per half
    /// interval. Pages learn the interval from each report's answer.
    #[arg(long, env = "SYNCROOM_SYNC_REPORT_INTERVAL", default_value = "5", value_parser = parse_report_interval)]
    pub sync_report_interval: Duration,

    /// Most live sync reports (one per listening stream) one room keeps; past it new reporters
    /// are turned away (`503`) until reports expire.
    #[arg(long, env = "SYNCROOM_MAX_SYNC_REPORTS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_sync_reports: u32,
    /// Schedule every start this far ahead (milliseconds): `play`, and a playing `load`, `next`
    /// or auto-advance, set `starts_at` to now plus this, so every player is positioned and
    /// primed before the moment and starts at it. 0 starts at once (no `starts_at`).
    #[arg(long, env = "SYNCROOM_START_LEAD_MS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=MAX_START_LEAD_MS))]
    pub start_lead_ms: u64,

    /// Ready gate: after a playing `load`, `next` or auto-advance, start once this percentage
    /// of the listening pages that take part (`?ready_gate=1`) report the item ready, or at
    /// `--gate-deadline-ms`, whichever comes first. A room's host may set its own.
    #[arg(long, env = "SYNCROOM_GATE_QUORUM", default_value_t = 80, value_parser = clap::value_parser!(u64).range(0..=crate::room::MAX_GATE_QUORUM))]
    pub gate_quorum: u64,

    /// Ready gate: the longest wait for the listening pages (milliseconds); 0 turns the gate off.
    #[arg(long, env = "SYNCROOM_GATE_DEADLINE_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(0..=crate::room::MAX_GATE_DEADLINE_MS))]
    pub gate_deadline_ms: u64,

    /// Chat messages each client address may send per minute (sustained).
    #[arg(long, env = "SYNCROOM_CHAT_PER_MINUTE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub chat_per_minute: u32,

    /// Chat messages a client address may send at once before the per-minute rate applies.
    #[arg(long, env = "SYNCROOM_CHAT_BURST", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub chat_burst: u32,

    /// Chat messages one room takes per minute from all its senders together (sustained), on
    /// each node: a flood guard against many addresses at once.
    #[arg(long, env = "SYNCROOM_ROOM_CHAT_PER_MINUTE", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=600_000))]
    pub room_chat_per_minute: u32,

    /// Chat messages one room takes at once before its per-minute rate applies.
    #[arg(long, env = "SYNCROOM_ROOM_CHAT_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub room_chat_burst: u32,

    /// Cut off a connection whose request headers have not all arrived after this long (seconds).
    /// With `--tls-cert`, the TLS handshake and the first request must also arrive within it.
    #[arg(long, env = "SYNCROOM_HEADER_TIMEOUT", default_value = "10", value_parser = parse_positive_secs)]
    pub header_timeout: Duration,

    /// Cut off a request whose body has not all arrived after this long (seconds).
    #[arg(long, env = "SYNCROOM_BODY_TIMEOUT", default_value = "10", value_parser = parse_positive_secs)]
    pub body_timeout: Duration,

    /// On SIGTERM, give open connections this long to finish before exiting (seconds).
    #[arg(long, env = "SYNCROOM_SHUTDOWN_GRACE", default_value = "10", value_parser = parse_secs)]
    pub shutdown_grace: Duration,

    /// On shutdown, streams end with a `retry:` spread at random over this long (seconds), so
    /// the clients of a restarting server come back gradually rather than all at once.
    #[arg(long, env = "SYNCROOM_SHUTDOWN_RETRY_SPREAD", default_value = "10", value_parser = parse_secs)]
    pub shutdown_retry_spread: Duration,

    /// Log format on stderr; the level comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "SYNCROOM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Where `--listen` points: an IP address, or a host name resolved at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `127.0.0.1:8080`, `[::]:8080`: exactly this address.
    Ip(SocketAddr),
    /// `localhost:8080`: every address the name resolves to.
    Host { host: String, port: u16 },
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(addr) => addr.fmt(f),
            Self::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Config {
    /// How rooms keep listeners' sync reports, from the two flags.
    pub fn sync_rules(&self) -> crate::room::sync::SyncRules {
        crate::room::sync::SyncRules {
            interval: self.sync_report_interval,
            max_reports: self.max_sync_reports as usize,
        }
    }

    /// The defaults, as `syncroom` with no flags and no environment would have them.
    /// Tests start from this and change what they exercise.
    pub fn defaults() -> Self {
        // Parsing an empty command line cannot fail: every field has a default.
        Self::try_parse_from(["syncroom"]).expect("defaults parse")
    }
}

/// Parses seconds given as `15`, `0.25` or `1800`, refusing negatives and non-numbers.
fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{text}` is not a usable number of seconds"))
}

/// Like [`parse_secs`], for durations where zero would mean a busy loop or
/// nothing ever served (keepalive, stream age, timeouts).
fn parse_positive_secs(text: &str) -> Result<Duration, String> {
    let duration = parse_secs(text)?;
    if duration < Duration::from_millis(1) {
        return Err(format!("`{text}` must be at least 0.001 seconds"));
    }
    Ok(duration)
}

/// The bounds of `--sync-report-interval`.
pub const SYNC_REPORT_INTERVAL_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(crate::room::limits::MIN_SYNC_REPORT_INTERVAL_MS)
        ..=Duration::from_millis(crate::room::limits::MAX_SYNC_REPORT_INTERVAL_MS);

/// `--sync-report-interval`: seconds within [`SYNC_REPORT_INTERVAL_RANGE`].
fn parse_report_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_secs(text)?;
    if !SYNC_REPORT_INTERVAL_RANGE.contains(&interval) {
        return Err(format!("`{text}` must be from 1 to 60 seconds"));
    }
    Ok(interval)
}

/// `IP:PORT` or `HOST:PORT`; an IPv6 address goes in brackets (`[::1]:8080`).
fn parse_listen(text: &str) -> Result<ListenAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(ListenAddr::Ip(addr));
    }
    let expected =
        "expected IP:PORT or HOST:PORT, such as 127.0.0.1:8080, [::1]:8080 or localhost:8080";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("`{text}` has no port: {expected}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number (0-65535): {expected}"))?;
    let plausible_host = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !plausible_host {
        return Err(format!(
            "`{host}` is neither an IP address nor a host name: {expected}"
        ));
    }
    Ok(ListenAddr::Host {
        host: host.to_owned(),
        port,
    })
}

/// An API key: printable ASCII without spaces (as Google's are), not empty.
fn parse_api_key(text: &str) -> Result<ApiKey, String> {
    let key = text.trim();
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        // The text is not echoed: it may be a real key pasted wrongly.
        return Err("an API key is printable ASCII with no spaces, and not empty".into());
    }
    Ok(ApiKey::new(key.to_owned()))
}

/// An `http://` or `https://` base URL with a host.
fn parse_api_url(text: &str) -> Result<url::Url, String> {
    let url =
        url::Url::parse(text.trim()).map_err(|error| format!("`{text}` is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "`{text}` is not an http:// or https:// URL with a host, such as {DEFAULT_YOUTUBE_API_URL}"
        ));
    }
    Ok(url)
}

/// An origin such as `https://party.example` (scheme, host, optional port), or `*`.
fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    let plausible = text == "*"
        || ((text.starts_with("http://") || text.starts_with("https://"))
            && !text.ends_with('/')
            && text.bytes().all(|b| b.is_ascii_graphic()));
    if plausible {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not an origin such as https://party.example (no path, no trailing slash) or *"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_cluster_seeds_are_repeated_or_comma_separated_and_exclude_redis() {
        let config = Config::try_parse_from([
            "syncroom",
            "--redis-cluster",
            "redis://a:7000,redis://b:7000",
            "--redis-cluster",
            "redis://c:7000",
        ])
        .expect("seeds parse");
        assert_eq!(
            config.redis_cluster,
            ["redis://a:7000", "redis://b:7000", "redis://c:7000"]
        );
        let both = Config::try_parse_from([
            "syncroom",
            "--redis",
            "redis://a:6379",
            "--redis-cluster",
            "redis://a:7000",
        ]);
        assert!(both.is_err());
    }

    #[test]
    fn seconds_accept_decimals_and_refuse_garbage() {
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_secs("15"), Ok(Duration::from_secs(15)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("inf").is_err());
        assert_eq!(parse_secs("0"), Ok(Duration::ZERO));
        assert!(parse_positive_secs("0").is_err());
        assert!(parse_positive_secs("0.0001").is_err());
        assert_eq!(parse_positive_secs("0.5"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn origins_are_checked() {
        assert!(parse_origin("https://party.example").is_ok());
        assert!(parse_origin("http://127.0.0.1:3000").is_ok());
        assert!(parse_origin("*").is_ok());
        assert!(parse_origin("party.example").is_err());
        assert!(parse_origin("https://party.example/").is_err());
        assert!(parse_origin("https://a b").is_err());
    }

    #[test]
    fn listen_takes_an_ip_or_a_host_name_with_a_port() {
        assert_eq!(
            parse_listen("0.0.0.0:8080"),
            Ok(ListenAddr::Ip("0.0.0.0:8080".parse().unwrap()))
        );
        assert_eq!(
            parse_listen("[::1]:80"),
            Ok(ListenAddr::Ip("[::1]:80".parse().unwrap()))
        );
        assert_eq!(
            parse_listen("localhost:8080"),
            Ok(ListenAddr::Host {
                host: "localhost".into(),
                port: 8080
            })
        );
        assert_eq!(
            parse_listen("party.example:0").map(|a| a.to_string()),
            Ok("party.example:0".into())
        );
        for bad in [
            "localhost",
            "localhost:http",
            "localhost:70000",
            ":8080",
            "::1:8080",
            "a b:1",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Config::defaults();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.history, 1024);
        assert_eq!(config.keepalive, Duration::from_secs(15));
        assert_eq!(config.room_ttl, Duration::from_secs(3600));
        assert_eq!(config.max_stream_age, Duration::from_secs(1800));
        assert_eq!(config.rooms_per_minute, 10);
        assert_eq!(config.rooms_burst, 5);
        assert_eq!(config.max_rooms_per_client, 20);
        assert_eq!(config.max_persistent_rooms, 100);
        assert_eq!(config.sync_report_interval, Duration::from_secs(5));
        assert!(parse_report_interval("0.5").is_err());
        assert!(parse_report_interval("61").is_err());
        assert_eq!(
            parse_report_interval("2.5"),
            Ok(Duration::from_millis(2500))
        );
    }

    #[test]
    fn youtube_flags_are_checked_and_the_key_never_shows() {
        assert!(parse_api_key("AIzaSy-abc_123").is_ok());
        assert!(parse_api_key("").is_err());
        assert!(parse_api_key("two words").is_err());
        let error = parse_api_key("secret\u{7}").expect_err("control");
        assert!(!error.contains("secret"), "{error}");
        assert_eq!(
            format!("{:?}", ApiKey::new("AIzaSy-abc".into())),
            "ApiKey(<hidden>)"
        );
        assert!(parse_api_url("http://127.0.0.1:9000/youtube/v3").is_ok());
        for bad in ["ftp://example.com/v3", "example.com", "data:text/plain,x"] {
            assert!(parse_api_url(bad).is_err(), "{bad}");
        }
        let config = Config::defaults();
        assert_eq!(config.youtube_api_key, None);
        assert_eq!(config.youtube_api_url.as_str(), DEFAULT_YOUTUBE_API_URL);
    }
}
