//! The bare tokio-modbus client loop: the reference emgate's Modbus capacity
//! is measured against (issue 16, Performance item 3; `scripts/capacity.py`).
//!
//! C connections, each issuing read requests back to back (one outstanding
//! request per connection, as emgate's pollers do) for D seconds, and
//! nothing else: no decoding, validation, aggregation, encoding or spool.
//! Each connection walks unit ids `1..=units` and, per unit, the reads of a
//! meter with `points` contiguous float32 registers from address 0: reads of
//! up to 124 registers (62 points), the last one shorter, which is exactly
//! how emgate's planner merges such a profile under `max_registers = 125`.
//!
//! It is an example, not a bench target, so that `cargo build --release
//! --example bare_modbus` leaves a binary at a fixed path
//! (`target/release/examples/bare_modbus`) that the capacity script can run
//! as a process of its own, with its own CPU time in `/proc`.
//!
//! ```sh
//! cargo build --release --example bare_modbus
//! target/release/examples/bare_modbus --addr 127.0.0.1:5020 --units 10 --points 992 --seconds 10
//! ```
//!
//! Prints one JSON object: connections, reads, points, errors, seconds,
//! reads_per_s, points_per_s.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::net::TcpStream;
use tokio_modbus::client::{Reader, tcp};
use tokio_modbus::slave::{Slave, SlaveContext};

/// Registers of one float32 point.
const WORDS_PER_POINT: u16 = 2;
/// Largest read of float32 points under `max_registers = 125`.
const MAX_READ_WORDS: u16 = 124;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Bare tokio-modbus read loop: reads/s and points/s")]
struct Args {
    /// Modbus TCP server address; repeat for several (connection i uses the
    /// i-th modulo their number).
    #[arg(long, required = true)]
    addr: Vec<SocketAddr>,
    /// Connections (default: one per `--addr`).
    #[arg(long)]
    connections: Option<usize>,
    /// Unit ids polled per connection, 1..=units.
    #[arg(long, default_value_t = 1)]
    units: u8,
    /// Float32 points per unit (contiguous from address 0).
    #[arg(long, default_value_t = 62)]
    points: u16,
    /// Register kind: input (FC 04) or holding (FC 03).
    #[arg(long, default_value = "input")]
    register: String,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

/// The (start, count) of each read of one unit.
fn reads_of(points: u16) -> Vec<(u16, u16)> {
    let total = points * WORDS_PER_POINT;
    (0..total)
        .step_by(usize::from(MAX_READ_WORDS))
        .map(|start| (start, MAX_READ_WORDS.min(total - start)))
        .collect()
}

/// Counters shared by the connections.
#[derive(Default)]
struct Totals {
    reads: AtomicU64,
    points: AtomicU64,
    errors: AtomicU64,
}

/// One connection's loop until `stop`.
async fn run_connection(
    addr: SocketAddr,
    units: u8,
    reads: Arc<Vec<(u16, u16)>>,
    holding: bool,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    // As emgate does (src/sources/modbus/connect.rs).
    stream.set_nodelay(true)?;
    let mut ctx = tcp::attach_slave(stream, Slave(1));
    let (mut n_reads, mut n_points, mut n_errors) = (0u64, 0u64, 0u64);
    'outer: loop {
        for unit in 1..=units {
            ctx.set_slave(Slave(unit));
            for &(start, count) in reads.iter() {
                if stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
                let answer = if holding {
                    ctx.read_holding_registers(start, count).await
                } else {
                    ctx.read_input_registers(start, count).await
                };
                match answer {
                    Ok(Ok(words)) => {
                        n_reads += 1;
                        n_points += (words.len() / usize::from(WORDS_PER_POINT)) as u64;
                    }
                    Ok(Err(_)) => n_errors += 1,
                    Err(e) => {
                        totals.errors.fetch_add(n_errors + 1, Ordering::Relaxed);
                        return Err(std::io::Error::other(e));
                    }
                }
            }
        }
    }
    totals.reads.fetch_add(n_reads, Ordering::Relaxed);
    totals.points.fetch_add(n_points, Ordering::Relaxed);
    totals.errors.fetch_add(n_errors, Ordering::Relaxed);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let holding = match args.register.as_str() {
        "holding" => true,
        "input" => false,
        other => {
            eprintln!("--register {other}: give `input` or `holding`");
            return ExitCode::FAILURE;
        }
    };
    if args.units == 0 || args.points == 0 || args.points > 32_767 {
        eprintln!("--units and --points must be at least 1 (points at most 32767)");
        return ExitCode::FAILURE;
    }
    let connections = args.connections.unwrap_or(args.addr.len());
    let reads = Arc::new(reads_of(args.points));
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(run_connection(
                args.addr[i % args.addr.len()],
                args.units,
                Arc::clone(&reads),
                holding,
                Arc::clone(&stop),
                Arc::clone(&totals),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("connection failed: {e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("connection task failed: {e}");
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let reads = totals.reads.load(Ordering::Relaxed);
    let points = totals.points.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "connections": connections,
        "reads": reads,
        "points": points,
        "errors": totals.errors.load(Ordering::Relaxed),
        "failed_connections": failed,
        "seconds": secs,
        "reads_per_s": reads as f64 / secs,
        "points_per_s": points as f64 / secs,
    });
    println!("{report}");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::reads_of;

    #[test]
    fn reads_are_124_register_blocks_with_a_shorter_tail() {
        // 992 points = 1984 registers = 16 reads of 124.
        assert_eq!(reads_of(992).len(), 16);
        assert!(reads_of(992).iter().all(|&(_, c)| c == 124));
        // 1000 points = 2000 registers = 16 × 124 + 16.
        let r = reads_of(1000);
        assert_eq!(r.len(), 17);
        assert_eq!(r[16], (1984, 16));
        assert_eq!(reads_of(17), vec![(0, 34)]);
    }
}
