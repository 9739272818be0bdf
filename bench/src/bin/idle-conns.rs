//! Many connections: opens `--connections` HTTP/1.1 keep-alive connections to a server and holds
//! them for `--seconds`. actix-web closes a connection that stays quiet past its keep-alive
//! (5 s by default), so each connection sends one `GET {path}` every `--every` seconds (spread
//! evenly over the interval) and reads the answer: 10,000 connections at 4 s cost the server
//! 2,500 small requests a second. A connection the server closes is opened again and counted.
//! Prints one JSON line when the time is up or it is stopped (SIGTERM): connections held at the
//! end, reopened, failed requests.

#![allow(clippy::print_stdout)] // the result is the program's output

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens many keep-alive connections and holds them.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server, host:port.
    #[arg(long, default_value = "127.0.0.1:3100")]
    addr: String,
    /// Connections to hold.
    #[arg(long, short, default_value_t = 10_000)]
    connections: u64,
    /// Seconds to hold them (after they are open).
    #[arg(long, short, default_value_t = 60.0)]
    seconds: f64,
    /// Seconds between two requests on one connection (below the server's keep-alive).
    #[arg(long, default_value_t = 4.0)]
    every: f64,
    /// The path every keep-alive request asks for.
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// Connections being opened at once (the listen backlog is finite).
    #[arg(long, default_value_t = 256)]
    opening: usize,
}

#[derive(Debug, Default)]
struct Counts {
    open: AtomicU64,
    reopened: AtomicU64,
    failed: AtomicU64,
}

/// One request on `stream`, and its answer read (the answers are small: one read or a few).
async fn ping(stream: &mut TcpStream, request: &[u8], buffer: &mut [u8]) -> std::io::Result<()> {
    stream.write_all(request).await?;
    let mut seen = 0;
    loop {
        let n = stream.read(&mut buffer[seen..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen += n;
        let text = &buffer[..seen];
        if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&text[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen >= end + 4 + length {
                return Ok(());
            }
        }
        if seen == buffer.len() {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let counts = Arc::new(Counts::default());
    let request: Arc<[u8]> = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", args.path, args.addr)
        .into_bytes()
        .into();
    let opening = Arc::new(tokio::sync::Semaphore::new(args.opening.max(1)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let (args, counts, request, opening) = (
            Arc::clone(&args),
            Arc::clone(&counts),
            Arc::clone(&request),
            Arc::clone(&opening),
        );
        tasks.spawn(async move {
            let mut buffer = vec![0; 16 * 1024];
            let offset = Duration::from_secs_f64(args.every * i as f64 / args.connections as f64);
            let mut first = true;
            loop {
                let connected = {
                    let _permit = opening.acquire().await;
                    TcpStream::connect(&args.addr).await
                };
                let Ok(mut stream) = connected else {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                if !first {
                    counts.reopened.fetch_add(1, Ordering::Relaxed);
                }
                first = false;
                counts.open.fetch_add(1, Ordering::Relaxed);
                let mut next = tokio::time::Instant::now() + offset;
                loop {
                    if ping(&mut stream, &request, &mut buffer).await.is_err() {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep_until(next).await;
                    next += Duration::from_secs_f64(args.every);
                }
                counts.open.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    // Wait until they are all open (or 60 s), then hold them.
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts.open.load(Ordering::Relaxed) < args.connections && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened_in = started.elapsed().as_secs_f64();
    eprintln!(
        "idle-conns: {} of {} connections open after {opened_in:.1}s",
        counts.open.load(Ordering::Relaxed),
        args.connections
    );
    // Until --seconds are up or it is told to stop (SIGTERM, SIGINT): either way it reports.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs_f64(args.seconds)) => {}
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tasks.abort_all();
    println!(
        "{{\"connections\":{},\"held\":{},\"opened_in_seconds\":{opened_in:.2},\"reopened\":{},\"failed\":{},\"every\":{}}}",
        args.connections,
        counts.open.load(Ordering::Relaxed),
        counts.reopened.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        args.every
    );
    Ok(())
}
