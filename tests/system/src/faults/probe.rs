//! Watches the faulted member while a cell runs (a read every 250 ms, so an unreachable data plane
//! only skips reads): when it reached the fault phase and when it failed, with wall times.

use chrono::{DateTime, Utc};
use kube::Api;
use kube::api::DynamicObject;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// True when the member is at the fault phase.
pub type AtPhase = fn(&DynamicObject) -> bool;

#[derive(Debug, Default, Clone)]
struct Seen {
    at_phase: Option<DateTime<Utc>>,
    failed: Option<DateTime<Utc>>,
}

/// A running probe.
pub struct Probe {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

/// Condition types that mean a member failed.
const FAILED: [&str; 4] = [
    "Failed",
    "Invalid",
    "VolumeBackupFailed",
    "VolumeBackupInitializeFailed",
];

fn has_failed(o: &DynamicObject) -> bool {
    o.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c["status"] == "True" && c["type"].as_str().is_some_and(|t| FAILED.contains(&t))
            })
        })
}

impl Probe {
    /// Starts reading `name` through each of `apis`.
    pub fn start(apis: Vec<Api<DynamicObject>>, name: String, at: AtPhase) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            while !st.load(Ordering::SeqCst) {
                for api in &apis {
                    let got =
                        tokio::time::timeout(Duration::from_secs(2), api.get_opt(&name)).await;
                    if let Ok(Ok(Some(o))) = got {
                        let now = Utc::now();
                        let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
                        if g.at_phase.is_none() && at(&o) {
                            g.at_phase = Some(now);
                        }
                        if g.failed.is_none() && has_failed(&o) {
                            g.failed = Some(now);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Self { seen, stop }
    }

    fn get(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// When the member was first seen at the phase.
    pub fn at_phase(&self) -> Option<DateTime<Utc>> {
        self.get().at_phase
    }

    /// When the member was first seen failed/invalid.
    pub fn failed(&self) -> Option<DateTime<Utc>> {
        self.get().failed
    }

    /// Waits until the member is at the phase; `None` after `timeout`.
    pub async fn wait_at_phase(&self, timeout: Duration) -> Option<DateTime<Utc>> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.at_phase() {
                return Some(t);
            }
            if tokio::time::Instant::now() > end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Whether a member carries a condition of type `ty` (any status).
pub fn has_condition(o: &DynamicObject, ty: &str) -> bool {
    o.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty))
}
