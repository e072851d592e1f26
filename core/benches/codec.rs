//! Codec micro-benchmarks: the frames of the publish → deliver hot path.
//!
//! `cargo bench -p warren-core --bench codec`. Each iteration handles a batch of 1,000
//! messages (16-byte bodies unless named otherwise), so the reported throughput is messages
//! per second.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warren_core::codec::{
    decode_frame, encode_content, encode_message, encode_method_frame, BasicDeliver,
    BasicProperties, BasicPublish, ContentHeader, FrameKind, Method, ShortStr,
};

const BATCH: usize = 1_000;
const FRAME_MAX: u32 = 131_072;

fn publish() -> Method {
    Method::BasicPublish(BasicPublish {
        exchange: ShortStr::from_static(""),
        routing_key: ShortStr::from_static("bench-queue"),
        ..BasicPublish::default()
    })
}

fn deliver(tag: u64) -> Method {
    Method::BasicDeliver(BasicDeliver {
        consumer_tag: ShortStr::from_static("amq.ctag-bench"),
        delivery_tag: tag,
        redelivered: false,
        exchange: ShortStr::from_static(""),
        routing_key: ShortStr::from_static("bench-queue"),
    })
}

fn properties(persistent: bool) -> Vec<u8> {
    let mut out = Vec::new();
    BasicProperties {
        delivery_mode: persistent.then_some(2),
        ..BasicProperties::default()
    }
    .encode(&mut out);
    out
}

/// A client's stream of `BATCH` publishes (method + header + body frames).
fn publish_stream(size: usize) -> Vec<u8> {
    let props = properties(false);
    let body = vec![0x5au8; size];
    let method = publish();
    let mut out = Vec::new();
    for _ in 0..BATCH {
        encode_method_frame(&mut out, 1, &method);
        encode_content(&mut out, 1, 60, &props, &body, FRAME_MAX);
    }
    out
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(BATCH as u64));
    for size in [16usize, 1024] {
        let stream = publish_stream(size);
        g.bench_function(format!("publish+header+body/{size}B"), |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(&stream[..]);
                let mut bodies = 0usize;
                while let Some(frame) = decode_frame(&mut buf, FRAME_MAX).unwrap() {
                    match frame.kind {
                        FrameKind::Method(p) => {
                            black_box(Method::decode(&p).unwrap());
                        }
                        FrameKind::Header(p) => {
                            black_box(ContentHeader::decode(p).unwrap());
                        }
                        FrameKind::Body(p) => bodies += p.len(),
                        FrameKind::Heartbeat => {}
                    }
                }
                assert_eq!(bodies, BATCH * size);
            })
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(BATCH as u64));
    let props = properties(false);
    let body = Bytes::from(vec![0x5au8; 16]);
    let method = publish();
    let mut out = Vec::with_capacity(BATCH * 128);
    g.bench_function("publish+header+body/16B", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..BATCH {
                encode_method_frame(&mut out, 1, black_box(&method));
                encode_content(&mut out, 1, 60, &props, &body, FRAME_MAX);
            }
            black_box(out.len())
        })
    });
    for size in [16usize, 1024, 65_536] {
        let body = Bytes::from(vec![0x5au8; size]);
        let mut out = Vec::with_capacity(BATCH * (size + 128));
        g.bench_function(format!("deliver+header+body/{size}B"), |b| {
            b.iter(|| {
                out.clear();
                for tag in 1..=BATCH as u64 {
                    encode_message(&mut out, 1, &deliver(tag), &props, &body, FRAME_MAX);
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
