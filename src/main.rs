//! The `tutti` command.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::bench::BenchOpts;
use cli::demo::DemoOpts;
use cli::failover::FailoverOpts;
use cli::node::NodeOpts;

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
    Demo(DemoOpts),
    /// One demo member (started by `tutti demo`).
    #[command(hide = true)]
    DemoMember {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// Every member's name, in rank order.
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        #[command(flatten)]
        opts: DemoOpts,
    },
    /// One long-running group member: prints every event as a JSON line,
    /// multicasts stdin lines (or generated messages), leaves on SIGTERM
    /// or end of input.
    Node(NodeOpts),
    /// Measures the time from a member's crash (SIGKILL) to the new view
    /// at every survivor, for several group sizes over shm, and checks
    /// virtual synchrony on each run.
    Failover(FailoverOpts),
    /// Makes a long-term key pair for secure groups: writes the secret key
    /// file (mode 0600) and prints the public key, the line to add to the
    /// group's authorized-keys file.
    Keygen {
        /// Secret key file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Measures latency (pingpong) or throughput between processes,
    /// through a stack or through the bare driver (--raw).
    Bench(BenchOpts),
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
        /// Groups with membership under crashes, joins, leaves and
        /// partitions (loss default 0.1 is a good choice here).
        #[arg(long)]
        membership: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Demo(o) => match o.invalid() {
            Some(why) => {
                eprintln!("error: {why}");
                ExitCode::from(2)
            }
            None => cli::demo::parent(&o),
        },
        Cmd::Node(o) => cli::node::run(&o),
        Cmd::Failover(o) => cli::failover::run(&o),
        Cmd::DemoMember {
            dir,
            name,
            names,
            opts,
        } => cli::demo::member(&dir, &name, &names, &opts),
        Cmd::Bench(o) => cli::bench::run(&o),
        Cmd::Keygen { out } => cli::keys::keygen(&out),
        Cmd::Sim {
            seeds,
            seed,
            loss,
            trace,
            membership,
        } => cli::sim::run_sim(seeds, seed, loss, trace, membership),
    }
}
