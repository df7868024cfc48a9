//! Simulated PD: one per federated TiDB cluster, shared by all data planes.
//!
//! It models what `br operator pause-gc-and-schedulers` does to PD: a GC service safepoint plus
//! removed schedulers, kept as a lease with a TTL that the live init job renews. A graceful stop
//! resumes at once; a dead job leaves the pause in place until the lease expires. Every pause,
//! renew failure, resume and expiry is logged with its time and holder, and so is every
//! restore-data run, so tests can measure the pause window and prove nothing stayed paused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// Label of a `TidbCluster` naming the federated TiDB cluster it belongs to (= the PD key).
pub const TIDB_CLUSTER_LABEL: &str = "sim.brfed.dev/tidb-cluster";

/// Kind of a PD log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PdEventKind {
    /// GC and schedulers paused by a new lease.
    Pause,
    /// The holder's lease was already gone when it tried to renew it.
    RenewFailed,
    /// The holder resumed GC and schedulers.
    Resume,
    /// The lease ran out without being renewed.
    Expire,
}

/// One entry of the PD log.
#[derive(Debug, Clone, Serialize)]
pub struct PdEvent {
    /// When it happened (RFC 3339, milliseconds).
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: PdEventKind,
    /// Who did it: `{dataPlane}/{namespace}/{backup}`.
    pub by: String,
    /// Free text.
    pub detail: String,
}

/// A restore-data run recorded by the PD.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDataRun {
    /// When BR recovered the data.
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
    /// The member that ran it: `{dataPlane}/{namespace}/{restore}`.
    pub by: String,
    /// The resolved ts the whole cluster was truncated to.
    pub resolved_ts: u64,
}

#[derive(Debug, Clone)]
struct Lease {
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct PdState {
    leases: BTreeMap<String, Lease>,
    events: Vec<PdEvent>,
    restore_data: Vec<RestoreDataRun>,
}

impl PdState {
    /// `holder` takes the pause (a lease of `ttl` from `now`), logged with `detail`.
    fn take_lease(&mut self, holder: &str, now: DateTime<Utc>, ttl: Duration, detail: String) {
        self.leases.insert(
            holder.to_string(),
            Lease {
                acquired_at: now,
                expires_at: lease_end(now, ttl),
            },
        );
        self.log(now, PdEventKind::Pause, holder, detail);
    }

    fn log(&mut self, at: DateTime<Utc>, kind: PdEventKind, by: &str, detail: impl Into<String>) {
        let event = PdEvent {
            at,
            kind,
            by: by.to_string(),
            detail: detail.into(),
        };
        // expiries are logged at their expiry time, which may precede the newest entry
        let pos = self.events.partition_point(|e| e.at <= at);
        self.events.insert(pos, event);
    }

    fn expire(&mut self, now: DateTime<Utc>) {
        let expired: Vec<(String, Lease)> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires_at <= now)
            .map(|(h, l)| (h.clone(), l.clone()))
            .collect();
        for (holder, lease) in expired {
            self.leases.remove(&holder);
            self.log(
                lease.expires_at,
                PdEventKind::Expire,
                &holder,
                "pause lease expired without renewal",
            );
        }
    }
}

/// Read-only view of one PD, as served by `GET /pd/{key}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PdView {
    /// The PD key (the federated TiDB cluster).
    pub key: String,
    /// GC and schedulers are paused right now.
    pub paused: bool,
    /// Latest expiry among the live leases.
    #[serde(serialize_with = "ser_opt_time")]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Live leases.
    pub leases: Vec<LeaseView>,
    /// Number of `pause` events.
    pub pause_count: usize,
    /// Number of `resume` events.
    pub resume_count: usize,
    /// Number of `expire` events.
    pub expire_count: usize,
    /// The full log, oldest first.
    pub events: Vec<PdEvent>,
    /// Restore-data runs, oldest first.
    pub restore_data: Vec<RestoreDataRun>,
}

/// One live pause lease.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseView {
    /// Who holds it.
    pub holder: String,
    /// When it was taken.
    #[serde(serialize_with = "ser_time")]
    pub acquired_at: DateTime<Utc>,
    /// When it runs out unless renewed.
    #[serde(serialize_with = "ser_time")]
    pub expires_at: DateTime<Utc>,
}

/// All simulated PDs, keyed by TiDB cluster.
#[derive(Debug, Clone, Default)]
pub struct PdRegistry {
    inner: Arc<Mutex<BTreeMap<String, PdState>>>,
}

/// The end of a lease of `ttl` taken or renewed at `now`.
fn lease_end(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

impl PdRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, PdState>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<R>(&self, key: &str, f: impl FnOnce(&mut PdState, DateTime<Utc>) -> R) -> R {
        let now = Utc::now();
        let mut all = self.lock();
        let pd = all.entry(key.to_string()).or_default();
        pd.expire(now);
        f(pd, now)
    }

    /// Pauses GC and schedulers for `holder` with a lease of `ttl`.
    pub fn pause(&self, key: &str, holder: &str, ttl: Duration) {
        self.with(key, |pd, now| {
            let detail = format!("gc and schedulers paused, ttl {}ms", ttl.as_millis());
            pd.take_lease(holder, now, ttl, detail);
        });
    }

    /// Renews `holder`'s lease; if it had already expired the failure is logged and the pause is taken again.
    pub fn renew(&self, key: &str, holder: &str, ttl: Duration) {
        self.with(key, |pd, now| match pd.leases.get_mut(holder) {
            Some(lease) => lease.expires_at = lease_end(now, ttl),
            None => {
                pd.log(
                    now,
                    PdEventKind::RenewFailed,
                    holder,
                    "lease already expired",
                );
                let detail = "paused again after a failed renewal".to_string();
                pd.take_lease(holder, now, ttl, detail);
            }
        });
    }

    /// Resumes GC and schedulers on behalf of `holder`.
    pub fn resume(&self, key: &str, holder: &str, detail: &str) {
        self.with(key, |pd, now| {
            let detail = if pd.leases.remove(holder).is_some() {
                detail.to_string()
            } else {
                format!("{detail} (lease had already expired)")
            };
            pd.log(now, PdEventKind::Resume, holder, detail);
        });
    }

    /// Records that `by` ran restore-data truncating the cluster to `resolved_ts`.
    pub fn record_restore_data(&self, key: &str, by: &str, resolved_ts: u64) {
        self.with(key, |pd, now| {
            pd.restore_data.push(RestoreDataRun {
                at: now,
                by: by.to_string(),
                resolved_ts,
            });
        });
    }

    /// Logs the expiry of every lease that has run out (called periodically).
    pub fn sweep(&self) {
        let now = Utc::now();
        for pd in self.lock().values_mut() {
            pd.expire(now);
        }
    }

    /// Forgets everything.
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// One PD, if it was ever touched.
    pub fn view(&self, key: &str) -> Option<PdView> {
        let now = Utc::now();
        let mut all = self.lock();
        let pd = all.get_mut(key)?;
        pd.expire(now);
        Some(view_of(key, pd))
    }

    /// Every PD.
    pub fn views(&self) -> Vec<PdView> {
        let now = Utc::now();
        let mut all = self.lock();
        all.iter_mut()
            .map(|(key, pd)| {
                pd.expire(now);
                view_of(key, pd)
            })
            .collect()
    }
}

fn view_of(key: &str, pd: &PdState) -> PdView {
    let count = |k: PdEventKind| pd.events.iter().filter(|e| e.kind == k).count();
    PdView {
        key: key.to_string(),
        paused: !pd.leases.is_empty(),
        lease_expires_at: pd.leases.values().map(|l| l.expires_at).max(),
        leases: pd
            .leases
            .iter()
            .map(|(holder, l)| LeaseView {
                holder: holder.clone(),
                acquired_at: l.acquired_at,
                expires_at: l.expires_at,
            })
            .collect(),
        pause_count: count(PdEventKind::Pause),
        resume_count: count(PdEventKind::Resume),
        expire_count: count(PdEventKind::Expire),
        events: pd.events.clone(),
        restore_data: pd.restore_data.clone(),
    }
}

/// RFC 3339 with milliseconds, `Z` suffix.
pub fn rfc3339_ms(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_ms(t))
}

fn ser_opt_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339_ms(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graceful_resume_ends_the_pause_and_is_logged() {
        let pds = PdRegistry::default();
        pds.pause("k", "dp1/ns/b", Duration::from_secs(60));
        assert!(pds.view("k").unwrap().paused);
        pds.renew("k", "dp1/ns/b", Duration::from_secs(60));
        pds.resume("k", "dp1/ns/b", "init job deleted");
        let v = pds.view("k").unwrap();
        assert!(!v.paused);
        assert_eq!((v.pause_count, v.resume_count, v.expire_count), (1, 1, 0));
        let kinds: Vec<_> = v.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [PdEventKind::Pause, PdEventKind::Resume]);
    }

    #[test]
    fn an_unrenewed_lease_expires_at_its_expiry_time() {
        let pds = PdRegistry::default();
        pds.pause("k", "h", Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(40));
        let v = pds.view("k").unwrap();
        assert!(!v.paused);
        assert_eq!(v.expire_count, 1);
        let gap = v.events[1].at - v.events[0].at;
        assert!(
            gap >= chrono::Duration::milliseconds(20) && gap < chrono::Duration::milliseconds(40)
        );
        pds.renew("k", "h", Duration::from_secs(1));
        let v = pds.view("k").unwrap();
        assert!(v.paused);
        assert_eq!(
            v.events
                .iter()
                .filter(|e| e.kind == PdEventKind::RenewFailed)
                .count(),
            1
        );
    }

    #[test]
    fn views_serialize_with_millisecond_timestamps() {
        let pds = PdRegistry::default();
        pds.record_restore_data("k", "dp2/ns/r", 42);
        let json = serde_json::to_value(pds.views()).unwrap();
        let at = json[0]["restoreData"][0]["at"].as_str().unwrap();
        assert!(
            at.ends_with('Z') && at.len() == "2024-01-01T00:00:00.000Z".len(),
            "{at}"
        );
        assert_eq!(json[0]["restoreData"][0]["resolvedTs"], 42);
    }
}
