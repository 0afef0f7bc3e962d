//! Logs and metrics.
//!
//! Logs go through `tracing` to stderr, filtered by `RUST_LOG` (default `info`),
//! as text or JSON. Metrics live in a per-server [`Metrics`] registry rather than a
//! process-global one, so several servers in one process (the tests) each count
//! their own; `/metrics` renders it in the Prometheus text format.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber. Called once, by the binary.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (only possible in tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The labels of `syncroom_commands_total`: both from small fixed sets, so the
/// number of series stays bounded whatever clients send.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub r#type: &'static str,
    pub outcome: &'static str,
}

/// The label of `syncroom_listener_drift_seconds`: the reporting page's player
/// kind, one of a fixed three.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlayerLabels {
    pub player: &'static str,
}

/// The label of `syncroom_redis_up`: a Redis (`host:port`), or a cluster
/// shard's primary and its slots.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    pub shard: String,
}

/// The buckets of `syncroom_listener_drift_seconds`: 1 ms .. ~16 s.
fn drift_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The server's metrics. Cheap to update from any task (atomics inside).
pub struct Metrics {
    registry: Registry,
    /// Open event streams on this node.
    pub connections: Gauge,
    /// Rooms held by this node.
    pub rooms: Gauge,
    /// Bytes of the frames this node's rooms keep for resume, over all rooms.
    pub history_bytes: Gauge,
    /// Id-carrying events emitted.
    pub events: Counter,
    /// Commands by type and outcome (`applied`, `noop`, or the error code).
    pub commands: Family<CommandLabels, Counter>,
    /// Command arrival → its event written to every local listener.
    pub fanout_seconds: Histogram,
    /// Each sync report's drift p95, by player kind (observed by the node that took it).
    pub listener_drift_seconds: Family<PlayerLabels, Histogram, fn() -> Histogram>,
    /// Whether each Redis shard answered its last probe (1) or not (0).
    pub redis_up: Family<ShardLabels, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let connections = Gauge::default();
        let rooms = Gauge::default();
        let history_bytes = Gauge::default();
        let events = Counter::default();
        let commands = Family::<CommandLabels, Counter>::default();
        // 50 µs .. ~1.6 s.
        let fanout_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "syncroom_connections",
            "Open event streams",
            connections.clone(),
        );
        registry.register("syncroom_rooms", "Rooms on this node", rooms.clone());
        registry.register(
            "syncroom_history_bytes",
            "Bytes of events this node's rooms keep for resume, over all rooms",
            history_bytes.clone(),
        );
        registry.register(
            "syncroom_events",
            "Id-carrying room events emitted",
            events.clone(),
        );
        registry.register(
            "syncroom_commands",
            "Commands received, by type and outcome",
            commands.clone(),
        );
        registry.register(
            "syncroom_command_fanout_seconds",
            "Time from a command's arrival to its event being written to every local listener",
            fanout_seconds.clone(),
        );
        let listener_drift_seconds =
            Family::<PlayerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                drift_histogram,
            );
        registry.register(
            "syncroom_listener_drift_seconds",
            "Listeners' reported drift from the room (each sync report's p95), by player kind",
            listener_drift_seconds.clone(),
        );
        let redis_up = Family::<ShardLabels, Gauge>::default();
        registry.register(
            "syncroom_redis_up",
            "Whether each Redis shard answered this node's last probe (1) or not (0)",
            redis_up.clone(),
        );
        Self {
            registry,
            redis_up,
            connections,
            rooms,
            history_bytes,
            events,
            commands,
            fanout_seconds,
            listener_drift_seconds,
        }
    }

    /// Counts one command.
    pub fn command(&self, r#type: &'static str, outcome: &'static str) {
        self.commands
            .get_or_create(&CommandLabels { r#type, outcome })
            .inc();
    }

    /// Counts one sync report's drift p95 (milliseconds).
    pub fn listener_drift(&self, player: &'static str, p95_ms: f64) {
        self.listener_drift_seconds
            .get_or_create(&PlayerLabels { player })
            .observe(p95_ms / 1000.0);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
