//! A TCP proxy that delays everything it forwards by a fixed time each way:
//! the bench's stand-in for a network between a file server and PostgreSQL.
//! Loopback answers in tens of microseconds, so there round trips cost
//! little next to the server's work; a LAN costs 0.2–1 ms per round trip,
//! which is what batching saves (issue 20).
//!
//! Each direction has a reader thread, which stamps every chunk with the
//! time it may leave, and a writer thread, which sleeps until then (OS
//! threads: tokio's timer ticks in whole milliseconds). The delay is pure
//! latency and does not throttle throughput.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::Res;

/// Starts a proxy to `target` that delays each direction by `one_way`;
/// returns the address to connect to. It runs until the process ends.
pub fn start(target: SocketAddr, one_way: Duration) -> Res<SocketAddr> {
    proxy(target, move |client, server, client2, server2| {
        forward(client, server2, one_way);
        forward(server, client2, one_way);
    })
}

/// Listens on a free loopback port and, for each client, connects to
/// `target` and hands `relay` both sockets (client, server) and a second
/// handle of each (client, server), to copy one direction each. Returns the
/// address to connect to; the proxy runs until the process ends.
pub fn proxy(
    target: SocketAddr,
    relay: impl Fn(TcpStream, TcpStream, TcpStream, TcpStream) + Send + 'static,
) -> Res<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            relay(client, server, client2, server2);
        }
    });
    Ok(addr)
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
fn forward(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (send, receive) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        for (due, chunk) in receive {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if send
                        .send((Instant::now() + delay, buffer[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
}
