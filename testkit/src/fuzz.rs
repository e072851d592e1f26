//! The whole-connection fuzz harness: arbitrary bytes from a client after a valid handshake
//! (with a channel open or not), or after a prefix of one cut anywhere, driven through the
//! core's pump with the broker behind it, then hours of virtual time. Shared by the cargo-fuzz
//! target (`fuzz/fuzz_targets/connection.rs`) and the test that replays its corpus in CI
//! (`testkit/tests/fuzz_corpus.rs`).
//!
//! The oracle is the test client, which panics on anything a correct server never writes (a
//! frame that does not decode, content out of sequence), plus the end state: a connection
//! whose socket the server closed is one the broker has forgotten, and one still open is one
//! the broker still knows. Nothing may panic, and every timer must move on.

use warren_core::codec::{
    encode_method_frame, ConnectionOpen, ConnectionTuneOk, Method, PROTOCOL_HEADER,
};

use crate::{Handshake, World};

/// How a connection ended up after an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Too short to say how to start.
    Skipped,
    /// The server closed the socket (after a close handshake or silently).
    Closed,
    /// Still open.
    Open,
}

/// Runs one input. Its first byte picks how the connection starts; with a cut handshake the
/// second says where; every later byte goes to the server as the client's, in pieces whose
/// sizes come from the input too, so that the framing sees every split.
pub fn connection(data: &[u8]) -> Outcome {
    let Some((&mode, rest)) = data.split_first() else {
        return Outcome::Skipped;
    };
    let mut w = World::new();
    let c = w.connect();
    let rest = match mode % 4 {
        0 => {
            w.client(c).handshake_with(&without_heartbeats());
            w.client(c).open_channel(1);
            rest
        }
        1 => {
            w.client(c).handshake_with(&without_heartbeats());
            rest
        }
        _ => {
            let Some((&cut, rest)) = rest.split_first() else {
                return Outcome::Skipped;
            };
            let script = handshake_bytes();
            let cut = usize::from(cut) * script.len() / 256;
            w.client(c).send_raw(&script[..cut]);
            rest
        }
    };
    // Piece sizes: 1 to 64 bytes when the mode's high bits ask for it, else all at once.
    let mut at = 0;
    let mut sizes = rest.iter().rev().map(|b| usize::from(b % 64) + 1);
    while at < rest.len() {
        let n = if mode & 0x80 != 0 {
            sizes.next().unwrap_or(rest.len())
        } else {
            rest.len()
        };
        let end = (at + n).min(rest.len());
        if w.client(c).is_socket_closed() {
            break;
        }
        w.client(c).send_raw(&rest[at..end]);
        at = end;
    }
    // Long enough for every deadline: the close handshake's, a heartbeat's, the handshake's.
    w.advance(10 * 60 * 1000);
    let live = w.broker().connection_count();
    if w.client(c).is_socket_closed() {
        assert_eq!(
            live, 0,
            "the socket is closed but the broker still has the connection"
        );
        Outcome::Closed
    } else {
        assert!(live <= 1, "{live} connections from one client");
        Outcome::Open
    }
}

/// A handshake that turns heartbeats off, so that the hours of virtual time at the end do not
/// close every connection for silence.
fn without_heartbeats() -> Handshake {
    Handshake {
        tune_ok: Some(tune_ok()),
        ..Default::default()
    }
}

fn tune_ok() -> ConnectionTuneOk {
    ConnectionTuneOk {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 0,
    }
}

/// What a client sends to open a connection: the protocol header, start-ok (PLAIN guest),
/// tune-ok (the server's defaults) and connection.open for "/".
fn handshake_bytes() -> Vec<u8> {
    let mut out = PROTOCOL_HEADER.to_vec();
    let methods: [Method; 3] = [
        Handshake::default().start_ok().into(),
        tune_ok().into(),
        ConnectionOpen {
            virtual_host: "/".into(),
            ..Default::default()
        }
        .into(),
    ];
    for m in &methods {
        encode_method_frame(&mut out, 0, m);
    }
    out
}
