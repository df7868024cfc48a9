//! How a cell is judged: the execution's end, the simulated PD, EC2 snapshots and volumes, S3.

use super::Check;
use crate::dataplane::World;
use crate::workflow::{Finished, Workflows};
use brfed_sim_operator::meta::{CloudSnapBackup, TAG_CLUSTER};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Waits until the execution is no longer RUNNING; `None` after `timeout` (or when it cannot be read).
pub async fn wait_execution(flows: &Workflows, arn: &str, timeout: Duration) -> Option<Finished> {
    let start = Instant::now();
    loop {
        if let Ok(d) = flows.describe(arn).await
            && let Some(end) = Finished::of(arn, &d)
        {
            return Some(end);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Cuts a cause down for the table and the JSON.
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn at(v: &Value) -> Option<DateTime<Utc>> {
    v["at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds with a sign, one decimal.
pub fn secs(ms: i64) -> String {
    format!("{:+.1}s", ms as f64 / 1000.0)
}

/// PD of `key` at the end of a cell: never paused, resumed or expired (with the time from
/// `fault_at` to the end of the pause), or still paused / holding a lease (not ok).
/// Waits up to `settle` for a pause to end (a teardown or abort may still be running).
pub async fn gc_check(
    world: &World,
    key: &str,
    fault_at: Option<DateTime<Utc>>,
    settle: Duration,
) -> (Check, Option<i64>) {
    let end = Instant::now() + settle;
    let pd = loop {
        let pd = world.pd(key).await;
        let paused = pd.as_ref().is_some_and(|p| {
            p["paused"] == true || p["leases"].as_array().is_some_and(|l| !l.is_empty())
        });
        if !paused || Instant::now() > end {
            break pd;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let Some(pd) = pd else {
        return (Check::new(true, "never paused"), None);
    };
    let count = |k: &str| pd[k].as_u64().unwrap_or(0);
    if count("pauseCount") == 0 {
        return (Check::new(true, "never paused"), None);
    }
    let leases = pd["leases"].as_array().map_or(0, Vec::len);
    if pd["paused"] == true || leases > 0 {
        return (
            Check::new(
                false,
                format!(
                    "PAUSED ({leases} lease, expires {})",
                    pd["leaseExpiresAt"].as_str().unwrap_or("?")
                ),
            ),
            None,
        );
    }
    let events = pd["events"].as_array().cloned().unwrap_or_default();
    let last = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "resume" || e["kind"] == "expire");
    let how = if count("expireCount") > 0 {
        "expired"
    } else {
        "resumed"
    };
    let delta = match (last.and_then(at), fault_at) {
        (Some(t), Some(f)) => Some((t - f).num_milliseconds()),
        _ => None,
    };
    let text = match delta {
        Some(d) => format!("{how} {}", secs(d)),
        None => how.to_string(),
    };
    (Check::new(true, text), delta)
}

/// Every EC2 snapshot carrying `TAG_CLUSTER = key`.
pub async fn snapshots_of_cluster(world: &World, key: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = world
            .cloud
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| format!("DescribeSnapshots: {e:?}"))?;
        for s in page.snapshots() {
            if s.tags()
                .iter()
                .any(|t| t.key() == Some(TAG_CLUSTER) && t.value() == Some(key))
            {
                out.push(s.snapshot_id().unwrap_or_default().to_string());
            }
        }
        token = page.next_token().map(String::from);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Backup leftovers: every snapshot of the cluster's volumes must be listed in some member's
/// `backupmeta` (under `{prefix}/`), and every object under `{prefix}/` must lie under a member
/// `backupPath` that the catalog document names (so `brfed backup delete` finds both).
pub async fn backup_leftovers(
    world: &World,
    key: &str,
    prefix: &str,
    catalog: Option<&Value>,
) -> Check {
    let snaps = match snapshots_of_cluster(world, key).await {
        Ok(s) => s,
        Err(e) => return Check::new(false, e),
    };
    let keys = match world.cloud.list(&world.bucket, &format!("{prefix}/")).await {
        Ok(k) => k,
        Err(e) => return Check::new(false, format!("ListObjectsV2: {e:?}")),
    };
    let mut listed = BTreeSet::new();
    for k in keys.iter().filter(|k| k.ends_with("/backupmeta")) {
        if let Ok(Some(bytes)) = world.cloud.get(&world.bucket, k).await
            && let Ok(meta) = serde_json::from_slice::<CloudSnapBackup>(&bytes)
        {
            listed.extend(meta.snapshot_ids());
        }
    }
    let paths: Vec<String> = catalog
        .and_then(|d| d["status"]["backups"].as_array())
        .map(|bs| {
            bs.iter()
                .filter_map(|b| b["backupPath"].as_str())
                .map(|p| {
                    let p = p.trim_start_matches("s3://");
                    let p = p.split_once('/').map_or("", |(_, k)| k);
                    format!("{}/", p.trim_end_matches('/'))
                })
                .collect()
        })
        .unwrap_or_default();
    let snaps_ok = snaps.iter().filter(|s| listed.contains(*s)).count();
    let objs_ok = keys
        .iter()
        .filter(|k| paths.iter().any(|p| k.starts_with(p.as_str())))
        .count();
    Check::new(
        snaps_ok == snaps.len() && objs_ok == keys.len(),
        format!(
            "snaps {snaps_ok}/{}, objs {objs_ok}/{}",
            snaps.len(),
            keys.len()
        ),
    )
}

/// Restore leftovers: every volume of the target cluster belongs to a Complete restore or is
/// listed in the catalog document's `brfed.leftovers[].volumes`.
pub async fn restore_volumes(
    world: &World,
    target_key: &str,
    complete: bool,
    catalog: Option<&Value>,
) -> Check {
    let vols = match world
        .cloud
        .volumes_tagged(&[(TAG_CLUSTER, target_key)])
        .await
    {
        Ok(v) => v,
        Err(e) => return Check::new(false, format!("DescribeVolumes: {e:?}")),
    };
    if complete {
        return Check::new(true, format!("vols {0}/{0} (Complete)", vols.len()));
    }
    let listed: BTreeSet<String> = catalog
        .and_then(|d| d["brfed"]["leftovers"].as_array())
        .map(|ls| {
            ls.iter()
                .flat_map(|l| l["volumes"].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let ok = vols.iter().filter(|v| listed.contains(&v.id)).count();
    Check::new(ok == vols.len(), format!("vols {ok}/{}", vols.len()))
}

/// `status.phase` of the catalog document (`(none)` without one), and whether it agrees with
/// how the execution ended (`SUCCEEDED`: `Complete`; else `Failed`).
pub fn catalog_phase(status: &str, doc: Option<&Value>) -> (String, bool) {
    let phase = doc
        .and_then(|d| d["status"]["phase"].as_str())
        .unwrap_or("(none)")
        .to_string();
    let consistent = match status {
        "SUCCEEDED" => phase == "Complete",
        _ => phase == "Failed",
    };
    (phase, consistent)
}

/// The member `member` in each of `planes` (`api` gives its API in a plane): `{p} gone`, what
/// `judge` says of it (whether it is settled, and how it reads), or `{p}:? ({error})`; the check
/// holds when every member is gone or settled.
pub async fn members_check(
    planes: &[String],
    api: impl Fn(&str) -> kube::Api<kube::api::DynamicObject>,
    member: &str,
    judge: impl Fn(&str, &kube::api::DynamicObject) -> (bool, String),
) -> Check {
    let mut parts = Vec::new();
    let mut ok = true;
    for p in planes {
        match api(p).get_opt(member).await {
            Ok(None) => parts.push(format!("{p} gone")),
            Ok(Some(m)) => {
                let (settled, text) = judge(p, &m);
                ok &= settled;
                parts.push(text);
            }
            Err(e) => {
                ok = false;
                parts.push(format!("{p}:? ({e})"));
            }
        }
    }
    Check::new(ok, parts.join(" "))
}

/// The errors the execution's Lambda tasks ended with (each then retried or caught), in order.
pub async fn task_errors(flows: &Workflows, arn: &str) -> Vec<String> {
    let mut out = Vec::new();
    // a history that cannot be read (further) gives the errors read so far
    let _ = flows
        .each_event(arn, |e| {
            if let Some(d) = e.lambda_function_failed_event_details() {
                out.push(d.error().unwrap_or("?").to_string());
            }
            if let Some(d) = e.lambda_function_timed_out_event_details() {
                out.push(d.error().unwrap_or("States.Timeout").to_string());
            }
        })
        .await;
    out
}

/// `Lambda.Unknown ×2, DataPlaneUnreachable ×1`.
pub fn tally(errors: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in errors {
        match counts.iter_mut().find(|(n, _)| n == e) {
            Some((_, c)) => *c += 1,
            None => counts.push((e.clone(), 1)),
        }
    }
    counts
        .iter()
        .map(|(n, c)| format!("{n} ×{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The catalog document of a cell's execution, read with `read`. A stopped or timed-out execution
/// is finished by its abort Lambda (the status-change rules: `backup-abort`, `restore-abort`, which
/// may first wait for the members to settle): then it is read again until it is `Failed` or
/// `Complete`, for up to 90 s.
pub async fn doc_after_abort<F, Fut>(status: &str, read: F) -> Option<Value>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let mut doc = read().await;
    if status == "SUCCEEDED" || status == "FAILED" {
        return doc;
    }
    let end = std::time::Instant::now() + Duration::from_secs(90);
    while doc
        .as_ref()
        .is_some_and(|d| d["status"]["phase"] != "Failed" && d["status"]["phase"] != "Complete")
        && std::time::Instant::now() < end
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        doc = read().await;
    }
    doc
}
