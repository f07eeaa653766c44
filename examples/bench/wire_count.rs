//! Round trips counted on the wire: a TCP proxy to PostgreSQL that reads
//! the frontend (client → server) protocol's message framing and counts the
//! messages after which a client waits for the server: `Query` (`Q`, a
//! simple-protocol message of one or more statements) and the `Sync` (`S`)
//! that ends an extended-protocol exchange (`Parse`/`Bind`/`Execute`…).
//! A `Sync` with no exchange before it is a ping, counted apart: sqlx pings
//! every connection when it goes back to its pool, in a task of its own
//! after the transaction's last answer. `tests/postgres_statements.rs`
//! counts the same operations in the server's statement log; this counts
//! what the network carries, so a round trip the log cannot show (a
//! prepare, a ping) is seen too.
//!
//! The client must not use TLS (`sslmode=disable`): the proxy reads the
//! plain protocol. Framing: the first messages of a connection (an
//! `SSLRequest`, then the startup message) have no type byte, only a
//! length; every later message is a type byte and a length that counts
//! itself and the body.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use super::Res;

/// The `SSLRequest` code: an untyped message that the startup message follows.
const SSL_REQUEST: u32 = 80_877_103;

/// What clients have sent through the proxy: round trips an operation
/// waits for, and pings.
#[derive(Clone, Default)]
pub struct RoundTrips {
    waits: Arc<AtomicU64>,
    pings: Arc<AtomicU64>,
}

impl RoundTrips {
    /// The counts so far (round trips, pings), and a fresh start.
    pub fn take(&self) -> (u64, u64) {
        (
            self.waits.swap(0, Ordering::SeqCst),
            self.pings.swap(0, Ordering::SeqCst),
        )
    }
}

/// Starts a counting proxy to `target`; returns its address and counter.
pub fn start(target: SocketAddr) -> Res<(SocketAddr, RoundTrips)> {
    let count = RoundTrips::default();
    let counter = count.clone();
    let addr = super::latency::proxy(target, move |client, server, client2, server2| {
        let counter = counter.clone();
        thread::spawn(move || copy_counting(client, server2, &counter));
        thread::spawn(move || copy(server, client2));
    })?;
    Ok((addr, count))
}

/// Copies server → client as it comes.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// Copies client → server, counting its `Query` and `Sync` messages.
fn copy_counting(mut from: TcpStream, mut to: TcpStream, count: &RoundTrips) {
    let mut framer = Framer::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let (waits, pings) = framer.feed(&buffer[..n]);
                count.waits.fetch_add(waits, Ordering::SeqCst);
                count.pings.fetch_add(pings, Ordering::SeqCst);
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Splits the frontend byte stream into messages.
#[derive(Default)]
struct Framer {
    /// The startup message has been seen: messages are typed from now on.
    started: bool,
    /// An extended-protocol exchange is open (its `Sync` not seen yet).
    extended: bool,
    /// Bytes of a message not complete yet.
    partial: Vec<u8>,
}

impl Framer {
    /// Takes the next bytes; returns the round trips (`Query`, a `Sync`
    /// ending an exchange) and the pings (a lone `Sync`) they completed.
    fn feed(&mut self, bytes: &[u8]) -> (u64, u64) {
        self.partial.extend_from_slice(bytes);
        let (mut waits, mut pings) = (0, 0);
        loop {
            // Untyped: length(4) at 0. Typed: type(1), length(4) at 1.
            let at = usize::from(self.started);
            let Some(header) = self.partial.get(at..at + 4) else {
                break;
            };
            let length = u32::from_be_bytes(header.try_into().expect("four bytes")) as usize;
            let whole = at + length;
            if length < 4 || self.partial.len() < whole {
                break;
            }
            if self.started {
                match self.partial[0] {
                    b'Q' => waits += 1,
                    b'S' if self.extended => waits += 1,
                    b'S' => pings += 1,
                    // Parse, Bind, Describe, Execute, Close, Flush.
                    b'P' | b'B' | b'D' | b'E' | b'C' | b'H' => self.extended = true,
                    _ => {}
                }
                if self.partial[0] == b'S' {
                    self.extended = false;
                }
            } else {
                let code = self
                    .partial
                    .get(4..8)
                    .map(|c| u32::from_be_bytes(c.try_into().expect("four bytes")));
                // Anything but an SSLRequest is the startup message.
                self.started = code != Some(SSL_REQUEST);
            }
            self.partial.drain(..whole);
        }
        (waits, pings)
    }
}
