//! The disruptive injections: a data plane's API server stopped/restarted with
//! `infra/local/dataplanes.sh stop-one/start-one`, and Lambda function instances killed (pids from
//! the emulator's `GET /_brfed/functions`).

use crate::workflow::emulator;
use serde_json::Value;
use std::process::Command;

fn dataplanes(args: &[&str]) -> Result<(), String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/local/dataplanes.sh"
    );
    let out = Command::new(script)
        .args(args)
        .output()
        .map_err(|e| format!("dataplanes.sh {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "dataplanes.sh {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `dataplanes.sh stop-one NAME`; the returned guard runs `start-one NAME` when dropped, so the
/// plane comes back even when the cell fails.
pub fn stop_plane(name: &'static str) -> Result<PlaneDown, String> {
    let guard = PlaneDown {
        name,
        restored: false,
    };
    dataplanes(&["stop-one", name])?;
    Ok(guard)
}

/// A stopped data plane.
pub struct PlaneDown {
    name: &'static str,
    restored: bool,
}

impl PlaneDown {
    /// `dataplanes.sh start-one`.
    pub fn start(mut self) -> Result<(), String> {
        self.restored = true;
        dataplanes(&["start-one", self.name])
    }
}

impl Drop for PlaneDown {
    fn drop(&mut self) {
        if !self.restored
            && let Err(e) = dataplanes(&["start-one", self.name])
        {
            eprintln!("restoring {}: {e}", self.name);
        }
    }
}

/// Instances and in-flight invocations of a function, from `GET /_brfed/functions`.
pub fn function_instances(function: &str) -> (Vec<u32>, u64) {
    let doc = emulator("GET", "/_brfed/functions", None);
    let f = &doc["functions"][function];
    let pids = f["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .filter_map(|p| u32::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    (pids, f["inflight"].as_u64().unwrap_or(0))
}

/// SIGKILL to each pid (instances of one function, as the emulator lists them).
pub fn kill9(pids: &[u32]) -> Vec<String> {
    pids.iter()
        .map(|p| {
            let st = Command::new("kill").args(["-9", &p.to_string()]).status();
            match st {
                Ok(s) if s.success() => format!("killed {p}"),
                Ok(s) => format!("kill -9 {p}: {s}"),
                Err(e) => format!("kill -9 {p}: {e}"),
            }
        })
        .collect()
}
