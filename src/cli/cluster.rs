//! A set of `tutti node` processes on this host, watched through their
//! JSON lines: the failover benchmark and the demo's membership timeline
//! use it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One line a node printed, with when this process read it.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Instant,
    pub v: Value,
}

/// A running node.
pub struct Node {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<Line>>>,
    pub killed_at: Option<Instant>,
}

/// What to start nodes with.
#[derive(Clone, Debug)]
pub struct NodeArgs {
    /// Driver: shm (names are endpoint names) or udp (names are
    /// `ip:port`).
    pub driver: String,
    pub dir: PathBuf,
    pub group: String,
    pub stack: String,
    pub send_rate: f64,
    pub size: usize,
    pub timeout_ms: u64,
}

/// Nodes over shm in one directory.
pub struct Cluster {
    pub args: NodeArgs,
    pub nodes: Vec<Node>,
    /// More arguments for every node started from now on.
    pub extra: Vec<String>,
}

/// A view as a node reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewSeen {
    pub ltime: u64,
    pub coord: u64,
    pub members: Vec<u64>,
    pub addrs: Vec<String>,
    pub merge: bool,
}

fn view_of(v: &Value) -> Option<ViewSeen> {
    if v["event"] != "view" {
        return None;
    }
    Some(ViewSeen {
        ltime: v["view"]["ltime"].as_u64()?,
        coord: v["view"]["coord"].as_u64()?,
        members: v["members"]
            .as_array()?
            .iter()
            .filter_map(|m| m.as_u64())
            .collect(),
        addrs: v["addrs"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str().map(String::from))
            .collect(),
        merge: v["merge"].as_bool().unwrap_or(false),
    })
}

impl Cluster {
    pub fn new(args: NodeArgs) -> Result<Cluster, String> {
        std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
        Ok(Cluster {
            args,
            nodes: Vec::new(),
            extra: Vec::new(),
        })
    }

    /// Starts node `name`, finding the group through `contacts`.
    pub fn spawn(&mut self, name: &str, contacts: &[String]) -> Result<usize, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let a = &self.args;
        let mut cmd = Command::new(exe);
        cmd.arg("node")
            .args(["--name", name, "--group", &a.group, "--driver", &a.driver])
            .args(["--stack", &a.stack])
            .arg("--dir")
            .arg(&a.dir)
            .args(["--timeout-ms", &a.timeout_ms.to_string()])
            .args(["--size", &a.size.to_string()])
            .args(["--send-rate", &a.send_rate.to_string()]);
        if !contacts.is_empty() {
            cmd.args(["--contacts", &contacts.join(",")]);
        }
        let key = self.key_file(name);
        if key.exists() {
            cmd.arg("--key")
                .arg(key)
                .arg("--authorized")
                .arg(self.args.dir.join("keys/authorized"));
        }
        cmd.args(&self.extra);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting node {name}: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    if let Ok(mut s) = sink.lock() {
                        s.push(Line {
                            at: Instant::now(),
                            v,
                        });
                    }
                }
            }
        });
        self.nodes.push(Node {
            name: name.to_string(),
            child,
            lines,
            killed_at: None,
        });
        Ok(self.nodes.len() - 1)
    }

    fn key_file(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.args.dir.join("keys").join(format!("{safe}.key"))
    }

    /// For a secure stack: makes a key for each of `names` and authorizes
    /// them all (nodes started later under these names use them). Does
    /// nothing for other stacks.
    pub fn authorize(&mut self, names: &[String]) -> Result<(), String> {
        let secure = tutti::Spec::parse(&self.args.stack)
            .map_err(|e| e.to_string())?
            .is_secure();
        if !secure {
            return Ok(());
        }
        std::fs::create_dir_all(self.args.dir.join("keys")).map_err(|e| e.to_string())?;
        let mut list = String::new();
        for n in names {
            let f = self.key_file(n);
            let _ = std::fs::remove_file(&f);
            list.push_str(&super::keys::write_key(&f)?);
            list.push('\n');
        }
        std::fs::write(self.args.dir.join("keys/authorized"), list).map_err(|e| e.to_string())
    }

    /// Node names for `n` members: `<prefix><i>` over shm, free loopback
    /// ports over udp.
    pub fn names(&self, prefix: &str, n: usize) -> Result<Vec<String>, String> {
        (0..n)
            .map(|i| match self.args.driver.as_str() {
                "shm" => Ok(format!("{prefix}{i}")),
                _ => std::net::UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.local_addr())
                    .map(|a| a.to_string())
                    .map_err(|e| e.to_string()),
            })
            .collect()
    }

    /// Lines node `i` printed so far.
    pub fn lines(&self, i: usize) -> Vec<Line> {
        self.nodes[i]
            .lines
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Field `key` of node `i`'s latest `stats` line (0 if none).
    pub fn stat(&self, i: usize, key: &str) -> u64 {
        self.last_stats(i)
            .and_then(|v| v[key].as_u64())
            .unwrap_or(0)
    }

    /// Like [`Cluster::stat`], as a float.
    pub fn stat_f(&self, i: usize, key: &str) -> f64 {
        self.last_stats(i)
            .and_then(|v| v[key].as_f64())
            .unwrap_or(0.0)
    }

    fn last_stats(&self, i: usize) -> Option<Value> {
        let l = self.nodes[i].lines.lock().ok()?;
        l.iter()
            .rev()
            .find(|l| l.v["event"] == "stats")
            .map(|l| l.v.clone())
    }

    /// Node `i`'s views so far, with when each was seen.
    pub fn views(&self, i: usize) -> Vec<(Instant, ViewSeen)> {
        self.lines(i)
            .iter()
            .filter_map(|l| view_of(&l.v).map(|v| (l.at, v)))
            .collect()
    }

    /// Node `i`'s latest view.
    pub fn view(&self, i: usize) -> Option<ViewSeen> {
        self.views(i).pop().map(|(_, v)| v)
    }

    /// Waits until every node in `who` has a latest view that satisfies
    /// `ok`; returns when the last of them got it.
    pub fn wait_views(
        &self,
        who: &[usize],
        limit: Duration,
        ok: impl Fn(&ViewSeen) -> bool,
    ) -> Result<Instant, String> {
        let t = Instant::now();
        loop {
            let mut last = None;
            let mut all = true;
            for &i in who {
                match self.views(i).pop() {
                    Some((at, v)) if ok(&v) => last = Some(last.map_or(at, |l: Instant| l.max(at))),
                    _ => all = false,
                }
            }
            if all {
                return last.ok_or_else(|| "no nodes".to_string());
            }
            if t.elapsed() > limit {
                let now: Vec<String> = who
                    .iter()
                    .map(|i| format!("{}: {:?}", self.nodes[*i].name, self.view(*i)))
                    .collect();
                return Err(format!("views not reached within {limit:?}: {now:?}"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self, i: usize) -> Instant {
        let _ = self.nodes[i].child.kill();
        let at = Instant::now();
        self.nodes[i].killed_at = Some(at);
        let _ = self.nodes[i].child.wait();
        at
    }

    /// SIGTERM: the node leaves cleanly.
    pub fn term(&mut self, i: usize) {
        // SAFETY: signalling a child process this process started.
        unsafe {
            libc::kill(self.nodes[i].child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Waits for node `i` to exit; whether it printed `exit` first.
    pub fn wait_exit(&mut self, i: usize, limit: Duration) -> bool {
        let t = Instant::now();
        loop {
            if let Ok(Some(_)) = self.nodes[i].child.try_wait() {
                break;
            }
            if t.elapsed() > limit {
                let _ = self.nodes[i].child.kill();
                let _ = self.nodes[i].child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20));
        self.lines(i).iter().any(|l| l.v["event"] == "exit")
    }

    /// What node `i` delivered in view `ltime`.`coord`: (sender id,
    /// sequence number, payload hash).
    pub fn delivered_in(&self, i: usize, ltime: u64, coord: u64) -> BTreeSet<(u64, u64, String)> {
        let mut inside = false;
        let mut out = BTreeSet::new();
        for l in self.lines(i) {
            if let Some(v) = view_of(&l.v) {
                inside = v.ltime == ltime && v.coord == coord;
                continue;
            }
            if inside && l.v["event"] == "deliver" {
                out.insert((
                    l.v["sender_id"].as_u64().unwrap_or(0),
                    l.v["seq"].as_u64().unwrap_or(0),
                    l.v["hash"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
        out
    }

    /// Stops every node still running and removes the directory.
    pub fn stop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.args.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
