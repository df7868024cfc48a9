//! The Lambda functions themselves: init time, binary size, peak RSS.
//!
//! Init is measured the way Lambda sees it: the function binary of the target dir is started with
//! the world's function environment (`$BRFED_WORLD_DIR/functions.env`, the variables the emulator
//! gives its instances) and `AWS_LAMBDA_RUNTIME_API` pointing at a listener of this process; init
//! = the first `GET /2018-06-01/runtime/invocation/next` − the spawn. The listener never answers,
//! so no invocation runs; the process is then killed.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Figures of one function.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionFigures {
    /// Crate (= binary, = function) name.
    pub name: String,
    /// Init times of the starts, ms.
    pub init_ms: Vec<i64>,
    /// Median of `init_ms`.
    pub init_p50_ms: Option<i64>,
    /// Starts that never asked for an invocation (with what happened).
    pub init_failures: Vec<String>,
    /// Size of the debug binary the local world runs, bytes.
    pub debug_binary_bytes: Option<u64>,
    /// Size of `<target>/lambda/<crate>/bootstrap.zip` (`make package`), bytes, when present.
    pub release_zip_bytes: Option<u64>,
    /// Uncompressed size of the `bootstrap` in that zip, bytes.
    pub release_bootstrap_bytes: Option<u64>,
    /// When that zip was written (RFC 3339).
    pub release_zip_written: Option<String>,
    /// Peak RSS (`VmHWM`) of an init-only process (largest over the starts), KiB.
    pub rss_init_kib: Option<u64>,
    /// Peak RSS (`VmHWM`) of the emulator's warm instances of the function, which have served
    /// real invocations (largest over them), KiB.
    pub rss_served_kib: Option<u64>,
    /// Number of such instances.
    pub served_instances: usize,
}

/// Crates of `functions/` with a `src/main.rs` (the Lambda functions, as `make package` and the
/// deploy find them).
pub fn function_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../functions");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("src/main.rs").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `$CARGO_TARGET_DIR` (default `target`).
pub fn target_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
}

/// `VmHWM` of a process, KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The environment the emulator gives a function instance (infra/local/emulator.py,
/// `FunctionPool.environment`), with the runtime API at `runtime_api`.
fn function_env(name: &str, runtime_api: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            [
                "PATH",
                "HOME",
                "LANG",
                "TMPDIR",
                "TZ",
                "RUST_LOG",
                "RUST_BACKTRACE",
            ]
            .contains(&k.as_str())
                || k.starts_with("BRFED_")
                || k.starts_with("SSL_CERT")
        })
        .collect();
    let region = std::env::var("AWS_DEFAULT_REGION")
        .or_else(|_| std::env::var("AWS_REGION"))
        .unwrap_or_else(|_| "us-west-2".into());
    for (k, v) in [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", "3".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", format!("bench/{name}")),
        ("AWS_REGION", region.clone()),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        (
            "AWS_ENDPOINT_URL",
            std::env::var("AWS_ENDPOINT_URL").unwrap_or_default(),
        ),
    ] {
        env.push((k.into(), v));
    }
    if let Ok(dir) = std::env::var("BRFED_WORLD_DIR")
        && let Ok(text) = std::fs::read_to_string(Path::new(&dir).join("functions.env"))
    {
        for line in text.lines().map(str::trim) {
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(v);
                env.push((k.trim().into(), v.into()));
            }
        }
    }
    env
}

/// One start of `binary`: (init ms, VmHWM KiB at init) or what went wrong.
async fn start_once(name: &str, binary: &Path) -> Result<(i64, Option<u64>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(binary);
    cmd.env_clear()
        .envs(function_env(name, &addr.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Ok(dir) = std::env::var("BRFED_WORLD_DIR") {
        cmd.current_dir(dir);
    }
    let spawned = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let pid = child.id().unwrap_or_default();
    let first_next = async {
        loop {
            let (mut sock, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(2).any(|w| w == b"\r\n") {
                let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let at = Instant::now();
            let line = String::from_utf8_lossy(&buf);
            if line.starts_with("GET ") && line.contains("/2018-06-01/runtime/invocation/next") {
                // keep the connection open (the runtime waits for an event) until the kill
                return Ok::<_, String>((at, sock));
            }
        }
    };
    let outcome = tokio::select! {
        r = first_next => r,
        status = child.wait() => Err(format!("exited before asking for an invocation: {status:?}")),
        _ = tokio::time::sleep(Duration::from_secs(60)) => Err("no GET /next within 60 s".into()),
    };
    let result = outcome.map(|(at, _sock)| {
        (
            (at - spawned).as_millis() as i64,
            vm_hwm_kib(pid).filter(|_| pid != 0),
        )
    });
    let _ = child.kill().await;
    result
}

/// Size of the `bootstrap` entry of a zip (from its central directory).
fn bootstrap_size_in_zip(bytes: &[u8]) -> Option<u64> {
    let u16_at = |i: usize| Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |i: usize| Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
    let eocd = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(i) == Some(0x0605_4b50))?;
    let entries = u16_at(eocd + 10)? as usize;
    let mut at = u32_at(eocd + 16)? as usize;
    for _ in 0..entries {
        if u32_at(at)? != 0x0201_4b50 {
            return None;
        }
        let size = u32_at(at + 24)? as u64;
        let (n, x, c) = (
            u16_at(at + 28)? as usize,
            u16_at(at + 30)? as usize,
            u16_at(at + 32)? as usize,
        );
        let file = bytes.get(at + 46..at + 46 + n)?;
        if file == b"bootstrap" {
            return Some(size);
        }
        at += 46 + n + x + c;
    }
    None
}

/// PIDs of the emulator's running instances of each function (`GET /_brfed/functions`).
pub async fn pool_instances() -> std::collections::BTreeMap<String, Vec<u32>> {
    let doc =
        tokio::task::spawn_blocking(|| crate::workflow::emulator("GET", "/_brfed/functions", None))
            .await
            .unwrap_or_default();
    doc["functions"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let pids = v["instances"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_u64().map(|p| p as u32))
                        .collect();
                    (k.clone(), pids)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Measures every function: `starts` init-only starts each (one at a time), sizes, and the peak
/// RSS of the emulator's warm instances.
pub async fn measure(names: &[String], starts: usize) -> Vec<FunctionFigures> {
    let target = target_dir();
    let pools = pool_instances().await;
    let mut out = Vec::new();
    for name in names {
        let mut f = FunctionFigures {
            name: name.clone(),
            ..Default::default()
        };
        let binary = target.join("debug").join(name);
        f.debug_binary_bytes = std::fs::metadata(&binary).ok().map(|m| m.len());
        let zip = target.join("lambda").join(name).join("bootstrap.zip");
        if let Ok(m) = std::fs::metadata(&zip) {
            f.release_zip_bytes = Some(m.len());
            f.release_zip_written = m
                .modified()
                .ok()
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
            f.release_bootstrap_bytes = std::fs::read(&zip)
                .ok()
                .and_then(|b| bootstrap_size_in_zip(&b));
        }
        if f.debug_binary_bytes.is_some() {
            for _ in 0..starts {
                match start_once(name, &binary).await {
                    Ok((ms, rss)) => {
                        f.init_ms.push(ms);
                        f.rss_init_kib = f.rss_init_kib.max(rss);
                    }
                    Err(e) => f.init_failures.push(e),
                }
            }
        } else {
            f.init_failures
                .push(format!("{} is not built", binary.display()));
        }
        f.init_p50_ms = crate::bench::stats::percentile(&f.init_ms, 50.0);
        let pids = pools.get(name).cloned().unwrap_or_default();
        let served: Vec<u64> = pids.iter().filter_map(|p| vm_hwm_kib(*p)).collect();
        f.served_instances = served.len();
        f.rss_served_kib = served.into_iter().max();
        out.push(f);
    }
    out
}
