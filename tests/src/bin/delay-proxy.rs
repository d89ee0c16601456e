//! `delay-proxy [--rtt-ms MS] UPSTREAM`: a TCP proxy on 127.0.0.1 that puts MS milliseconds
//! (default 20) of round-trip time between its clients and UPSTREAM (`HOST:PORT`), for
//! `cargo xtask bench`'s figures "at 20 ms": the tools talk to the proxy, the proxy to the
//! registry.
//!
//! It binds port 0 itself and prints the address it got (`127.0.0.1:PORT`) as the first line of
//! stdout, so no port is chosen and released for another server to race for; then it serves
//! until killed. `SIGUSR1` makes it print `connections N` (client connections accepted so far) on
//! stderr, to see how many connections a tool opened.
//!
//! The delay models a link, not a server: every chunk of bytes read from either side is
//! forwarded MS/2 after it was read (order kept, chunks behind it not held up by it), so each
//! HTTP request and its response together take MS longer, on a new connection and on a reused
//! keep-alive one alike, whatever the chunking and without parsing HTTP; requests in flight on
//! different connections are delayed side by side, as on a network. A new connection costs one
//! more round trip before its first byte goes on (the TCP handshake the loopback connect does
//! not pay), so reusing connections pays off as it does against a remote registry. TLS
//! handshakes (1 to 2 more round trips on a new connection to ECR) are not modelled.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

const USAGE: &str = "usage: delay-proxy [--rtt-ms MS] UPSTREAM (HOST:PORT)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut rtt_ms: u64 = 20;
    let mut upstream = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rtt-ms" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => rtt_ms = v,
                None => {
                    eprintln!("delay-proxy: --rtt-ms takes a whole number of milliseconds");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if upstream.is_none() && !a.starts_with('-') => upstream = Some(a),
            _ => {
                eprintln!("delay-proxy: unexpected argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(upstream) = upstream else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // One thread: the proxy shares the machine's cores with the tools it measures.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(serve(upstream, Duration::from_millis(rtt_ms))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("delay-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(upstream: String, rtt: Duration) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let connections = Arc::new(AtomicU64::new(0));
    let counted = connections.clone();
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            eprintln!("connections {}", counted.load(Ordering::Relaxed));
        }
    });
    loop {
        let (client, _) = listener.accept().await?;
        let accepted = Instant::now();
        connections.fetch_add(1, Ordering::Relaxed);
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Err(e) = proxy(client, &upstream, accepted, rtt).await {
                eprintln!("delay-proxy: connection to {upstream}: {e}");
            }
        });
    }
}

/// One client connection: its own upstream connection, both directions delayed by `rtt / 2`,
/// the first byte to upstream not before `accepted + rtt` (the handshake's round trip).
async fn proxy(
    client: TcpStream,
    upstream: &str,
    accepted: Instant,
    rtt: Duration,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let half = rtt / 2;
    let up = pump(client_r, server_w, half, Some(accepted + rtt));
    let down = pump(server_r, client_w, half, None);
    let (a, b) = tokio::join!(up, down);
    a.and(b)
}

/// Copies `from` to `to`, each chunk written `delay` after it was read (and not before
/// `not_before`); EOF is passed on (half-close) after the chunks before it.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    not_before: Option<Instant>,
) -> std::io::Result<()> {
    // Bounded: a slow reader on the far side holds the sender back instead of the proxy
    // buffering without limit (64 chunks of at most 64 KiB).
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await?;
            let now = Instant::now();
            let at = not_before.map_or(now, |t| t.max(now)) + delay;
            // An empty chunk is EOF.
            if tx.send((at, buf[..n].to_vec())).await.is_err() || n == 0 {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            sleep_until(at).await;
            if chunk.is_empty() {
                break;
            }
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    let (r, w) = tokio::join!(reader, writer);
    r.and(w)
}
