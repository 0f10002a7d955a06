//! hookd server processes started by the benchmark (and by the cluster/crash tests): spawn, wait
//! until ready, read CPU time and peak memory from /proc, kill or stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub data_dir: PathBuf,
    /// PostgreSQL URL; SQLite in `data_dir` when `None`.
    pub database: Option<String>,
    /// `all`, `api` or `worker`.
    pub role: &'static str,
    pub api_key: String,
    /// Extra `HOOKD_*` settings.
    pub env: Vec<(String, String)>,
    /// A fixed listen address (so a restarted node comes back at the same URL); port 0 otherwise.
    pub listen: Option<SocketAddr>,
}

pub struct Node {
    child: Child,
    pub address: SocketAddr,
    pub pid: u32,
}

impl Node {
    /// Starts `hookd serve` (this very binary) on a free loopback port and waits for `/readyz`.
    pub async fn start(spec: &NodeSpec) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        let listen = spec
            .listen
            .map(|a| a.to_string())
            .unwrap_or_else(|| "127.0.0.1:0".into());
        command
            .args(["serve", "--dev", "--listen", &listen, "--role", spec.role])
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .env("HOOKD_API_KEY", &spec.api_key)
            .env("HOOKD_LOG_LEVEL", "warn,hookd::server=info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = &spec.database {
            command.env("HOOKD_DATABASE_URL", url);
        }
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or(0);
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let address = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("address=").nth(1)
                    && let Some(Ok(address)) = rest.split_whitespace().next().map(str::parse)
                {
                    return Ok(address);
                }
            }
            Err(anyhow::anyhow!("hookd exited before listening"))
        })
        .await
        .map_err(|_| anyhow::anyhow!("hookd did not start within 60 s"))??;
        // Keep draining stderr so the node never blocks on a full pipe; pass warnings through.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[hookd {pid}] {line}");
            }
        });
        Ok(Self {
            child,
            address,
            pid,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// CPU seconds (user + system) used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid)
    }

    /// Peak resident memory so far, in MiB.
    pub fn peak_rss_mb(&self) -> f64 {
        status_kb(self.pid, "VmHWM:") / 1024.0
    }

    /// Current resident memory, in MiB.
    pub fn rss_mb(&self) -> f64 {
        status_kb(self.pid, "VmRSS:") / 1024.0
    }

    /// SIGKILL: a crash.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM and wait (graceful).
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn status_kb(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// A fresh temporary directory under `base` (removed by the caller).
pub fn fresh_dir(base: &Path, name: &str) -> std::io::Result<PathBuf> {
    let dir = base.join(format!("{name}-{}", crate::ids::new_id("run", 0)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
