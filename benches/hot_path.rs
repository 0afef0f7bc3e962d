//! Criterion benches of the per-command work that is not I/O: decoding a
//! command, applying it to a room, and encoding the SSE frame every listener
//! then shares. Run with `cargo bench --bench hot_path`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use std::hint::black_box;

use syncroom::room::event::Frame;
use syncroom::room::{Command, Control, Room, Source};

const T0: i64 = 1_763_800_000_000;

fn room_with_queue(items: usize) -> Room {
    let mut room = Room::new(
        "bench".into(),
        "bench".into(),
        Control::Open,
        Some(Source::Video("dQw4w9WgXcQ".into())),
        "token",
        1000,
        T0,
    );
    for i in 0..items {
        room.apply(
            Command::QueueAdd {
                source: Source::Video("9bZkp7q19f0".into()),
                title: Some(format!("Song number {i} — a title of ordinary length")),
            },
            T0,
        )
        .expect("queue_add applies");
    }
    room
}

fn decode(c: &mut Criterion) {
    let body = json!({"type": "seek", "position": 42.5, "expected_version": 7});
    c.bench_function("decode seek (JSON value to validated command)", |b| {
        b.iter(|| Command::decode(black_box(body.clone())).expect("decodes and validates"))
    });
}

fn apply(c: &mut Criterion) {
    c.bench_function("apply seek", |b| {
        let mut room = room_with_queue(0);
        let mut position = 0.0;
        b.iter(|| {
            position = (position + 1.5) % 200.0;
            room.apply(black_box(Command::Seek { position }), T0)
                .expect("seek applies")
        })
    });
    c.bench_function("apply queue_add + queue_remove (queue of 50)", |b| {
        b.iter_batched(
            || room_with_queue(50),
            |mut room| {
                room.apply(
                    Command::QueueAdd {
                        source: Source::Video("dQw4w9WgXcQ".into()),
                        title: None,
                    },
                    T0,
                )
                .expect("queue_add applies");
                room.apply(
                    Command::QueueRemove {
                        item_id: "q51".into(),
                    },
                    T0,
                )
                .expect("queue_remove applies")
            },
            BatchSize::SmallInput,
        )
    });
}

fn encode(c: &mut Criterion) {
    let mut room = room_with_queue(0);
    let events = room
        .apply(Command::Seek { position: 42.5 }, T0)
        .expect("seek applies");
    let state = events.into_iter().next().expect("one event");
    c.bench_function("encode state event frame", |b| {
        b.iter(|| black_box(&state).to_frame(None))
    });
    let view = room_with_queue(50).view(1000, T0);
    c.bench_function("encode snapshot frame (queue of 50)", |b| {
        b.iter(|| Frame::snapshot(black_box(&view)))
    });
}

criterion_group!(benches, decode, apply, encode);
criterion_main!(benches);
