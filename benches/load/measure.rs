//! Fixed concurrency for a fixed time: each worker repeats one operation on its own
//! connection; latencies are kept in full and sorted for exact percentiles.

use std::future::Future;
use std::time::{Duration, Instant};

/// One worker of a scenario: `step` is the measured operation (one request, or a whole
/// flow), `Err` when the answer was not the expected one.
pub trait Worker: Send + 'static {
    fn step(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// How long to run: a warm-up that is not recorded, then the measured time.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measured: Duration,
    /// The server's process: its CPU time over the measured window is divided by the
    /// operations done (all threads; for Latchkey and the peer alike).
    pub server_pid: u32,
}

/// User plus system CPU time of a process (all its threads), in seconds, from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks of 1/100 s: Linux's USER_HZ).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds of every process named `postgres` (the local database server, if any):
/// PostgreSQL's own work for the server's queries, which the server's CPU leaves out.
fn database_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == "postgres")
        })
        .filter_map(cpu_seconds)
        .sum()
}

/// Busy CPU seconds of the whole machine: user, nice, system, irq and softirq in
/// `/proc/stat` (not idle or iowait, and not steal, the time a virtual machine's host
/// gave to others, which is no work done here; guest time is inside user already).
fn machine_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = ticks.iter().take(7).sum::<f64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy / 100.0)
}

/// What one scenario measured.
#[derive(Debug, Default)]
pub struct Stats {
    /// Latencies of the successful operations, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    /// Server CPU seconds spent over the measured window, if they could be read.
    pub server_cpu_s: Option<f64>,
    /// The local PostgreSQL's CPU seconds over the same window.
    pub database_cpu_s: f64,
    /// The whole machine's busy CPU seconds (server, database and this driver).
    pub machine_cpu_s: Option<f64>,
}

impl Stats {
    pub fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.seconds
    }

    /// Server CPU time per successful operation, in milliseconds.
    pub fn cpu_ms_per_op(&self) -> Option<f64> {
        let n = self.latencies_us.len();
        self.server_cpu_s
            .filter(|_| n > 0)
            .map(|s| s * 1000.0 / n as f64)
    }

    /// `seconds` of CPU per successful operation, in milliseconds.
    fn per_op_ms(&self, seconds: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        (n > 0).then(|| seconds * 1000.0 / n as f64)
    }

    /// The local PostgreSQL's CPU per operation in milliseconds, when it did any work.
    pub fn database_ms_per_op(&self) -> Option<f64> {
        self.per_op_ms(self.database_cpu_s)
            .filter(|&ms| ms >= 0.005)
    }

    /// The `q` quantile (0..=1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return f64::NAN;
        }
        let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
        f64::from(self.latencies_us[i]) / 1000.0
    }

    /// One line for the log.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ok {}  errors {}",
            self.rate(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.quantile_ms(1.0),
            self.latencies_us.len(),
            self.errors
        );
        if let Some(cpu) = self.cpu_ms_per_op() {
            s.push_str(&format!("  server cpu {cpu:.3} ms/op"));
        }
        if let Some(db) = self.database_ms_per_op() {
            s.push_str(&format!("  database cpu {db:.3} ms/op"));
        }
        if let Some(all) = self.machine_cpu_s.and_then(|m| self.per_op_ms(m)) {
            s.push_str(&format!("  machine cpu {all:.3} ms/op"));
        }
        if let Some(e) = &self.first_error {
            s.push_str(&format!("  (first error: {e})"));
        }
        s
    }

    /// The table cell: rate and p99, and the errors if there were any.
    pub fn cell(&self) -> String {
        let mut s = if self.latencies_us.is_empty() {
            "0/s".to_owned()
        } else {
            format!(
                "{}/s, p99 {}",
                thousands(self.rate()),
                ms(self.quantile_ms(0.99))
            )
        };
        if let Some(cpu) = self.cpu_ms_per_op() {
            s.push_str(&format!(", {cpu:.2} ms CPU"));
        }
        if let Some(db) = self.database_ms_per_op() {
            s.push_str(&format!(" + {db:.2} ms PostgreSQL"));
        }
        if self.errors > 0 {
            s.push_str(&format!(" ({} errors)", thousands(self.errors as f64)));
        }
        s
    }
}

/// `12,345`.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with two significant decimals at most.
pub fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2} ms")
    } else if x < 100.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.0} ms")
    }
}

/// Runs every worker for the window and merges what they recorded.
pub async fn run<W: Worker>(workers: Vec<W>, window: Window) -> Stats {
    let start = Instant::now();
    let record_from = start + window.warmup;
    let end = record_from + window.measured;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(drive(w, record_from, end)))
        .collect();
    tokio::time::sleep_until(record_from.into()).await;
    let cpu_from = cpu_seconds(window.server_pid);
    let db_from = database_cpu_seconds();
    let machine_from = machine_cpu_seconds();
    tokio::time::sleep_until(end.into()).await;
    let cpu_to = cpu_seconds(window.server_pid);
    let db_to = database_cpu_seconds();
    let machine_to = machine_cpu_seconds();
    let mut stats = Stats {
        server_cpu_s: cpu_from.zip(cpu_to).map(|(a, b)| b - a),
        database_cpu_s: (db_to - db_from).max(0.0),
        machine_cpu_s: machine_from.zip(machine_to).map(|(a, b)| b - a),
        ..Stats::default()
    };
    for t in tasks {
        match t.await {
            Ok(part) => {
                stats.latencies_us.extend(part.latencies_us);
                stats.errors += part.errors;
                if stats.first_error.is_none() {
                    stats.first_error = part.first_error;
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(format!("worker died: {e}"));
            }
        }
    }
    stats.latencies_us.sort_unstable();
    stats.seconds = window.measured.as_secs_f64();
    stats
}

async fn drive<W: Worker>(mut w: W, record_from: Instant, end: Instant) -> Stats {
    let mut part = Stats::default();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let outcome = w.step().await;
        if t0 < record_from {
            continue;
        }
        match outcome {
            Ok(()) => {
                let us = t0.elapsed().as_micros();
                part.latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(e) => {
                part.errors += 1;
                part.first_error.get_or_insert_with(|| format!("{e:#}"));
                // A refusing server must not turn the worker into a busy loop.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    part
}
