//! The `tutti` command.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::bench::{BenchOpts, Mode};
use cli::demo::DemoOpts;

#[derive(Parser)]
#[command(
    name = "tutti",
    version,
    about = "tutti: process groups over zero-copy transports"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a group of processes on this host over shared memory: they
    /// multicast for a few seconds; prints per-member deliveries, the FIFO
    /// and completeness checks and latency percentiles. Exits 0 when every
    /// check holds.
    Demo {
        /// Member processes.
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// Seconds of multicasting.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Multicasts per second per member.
        #[arg(long, default_value_t = 20_000)]
        rate: u64,
        /// Payload bytes (at least 17).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Stack spec or preset.
        #[arg(long, default_value = "fifo")]
        stack: String,
    },
    /// One demo member (started by `tutti demo`).
    #[command(hide = true)]
    DemoMember {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        stack: String,
    },
    /// Measures latency (pingpong) or throughput between processes,
    /// through a stack or through the bare driver (--raw).
    Bench {
        /// pingpong or throughput.
        #[arg(value_enum)]
        mode: Mode,
        /// shm, uring or udp.
        #[arg(long, default_value = "shm")]
        driver: String,
        /// Stack spec or preset.
        #[arg(long, default_value = "com:nak:stable")]
        stack: String,
        /// Payload bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Messages (round trips for pingpong).
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Measure the bare driver, no stack.
        #[arg(long)]
        raw: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Receivers (throughput).
        #[arg(long, default_value_t = 2)]
        receivers: usize,
        /// All members' addresses in rank order (run on each host; rank 0
        /// measures). Without it, the peers are started here.
        #[arg(long, value_delimiter = ',')]
        members: Option<Vec<String>>,
        /// This member's address (with --members).
        #[arg(long)]
        me: Option<String>,
        /// Directory for shm endpoint files.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Runs groups in the deterministic simulator over a lossy, reordering,
    /// partitioning network and checks every delivery.
    Sim {
        /// Number of seeds to run.
        #[arg(long, default_value_t = 200)]
        seeds: u64,
        /// First seed (default: from the clock, printed). TUTTI_SEED=<n>
        /// replays one seed with a trace.
        #[arg(long)]
        seed: Option<u64>,
        /// Highest frame loss rate drawn, 0..1.
        #[arg(long, default_value_t = 0.2)]
        loss: f64,
        /// Print the trace of failing runs.
        #[arg(long)]
        trace: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Demo {
            members,
            seconds,
            rate,
            size,
            stack,
        } => {
            if !(2..=32).contains(&members)
                || !(0.1..=3600.0).contains(&seconds)
                || size < 17
                || rate == 0
            {
                eprintln!("error: need 2..=32 members, 0.1..=3600 s, size >= 17, rate > 0");
                return ExitCode::from(2);
            }
            cli::demo::parent(&DemoOpts {
                members,
                seconds,
                rate,
                size,
                stack,
            })
        }
        Cmd::DemoMember {
            dir,
            name,
            members,
            seconds,
            rate,
            size,
            stack,
        } => cli::demo::member(
            &dir,
            &name,
            &members,
            &DemoOpts {
                members: members.len(),
                seconds,
                rate,
                size,
                stack,
            },
        ),
        Cmd::Bench {
            mode,
            driver,
            stack,
            size,
            count,
            raw,
            json,
            receivers,
            members,
            me,
            dir,
        } => cli::bench::run(&BenchOpts {
            mode,
            driver,
            stack,
            size,
            count,
            raw,
            json,
            receivers,
            members,
            me,
            dir,
        }),
        Cmd::Sim {
            seeds,
            seed,
            loss,
            trace,
        } => cli::sim::run_sim(seeds, seed, loss, trace),
    }
}
