//! Snapshot deletions paced for EC2's request limits, with throttling backoff, each snapshot read
//! right before it is deleted and deleted only when it is this stack's and this backup's.

use crate::delete::status::REPORT_LIMIT;
use crate::error::StepError;
use crate::ports::SnapshotDeletion;
use crate::ports::SnapshotInfo;
use crate::ports::Volumes;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Output of the snapshot step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotProgress {
    /// Snapshots processed so far (the next call starts there).
    pub cursor: usize,
    /// Whether every snapshot brfed must delete is processed.
    pub done: bool,
    /// Deleted by this call.
    pub deleted: usize,
    /// Already gone (`InvalidSnapshot.NotFound`) in this call.
    pub not_found: usize,
    /// Throttled attempts in this call (each retried after a backoff).
    pub throttled: usize,
    /// Snapshots left in this call because, read right before their deletion, they were not
    /// the owner's (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_owned: Vec<String>,
}

/// Pacing of brfed's own snapshot deletions: the rate limit, the throttling backoff and the
/// per-invocation budget.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How long one invocation may work.
    pub budget: Duration,
    /// First backoff after a throttled call (doubles up to `max_backoff`).
    pub first_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Attempts per snapshot before `Ec2Unavailable`.
    pub attempts: u32,
}

impl Pacing {
    /// This pacing with its budget cut to `left` (what the invocation has before its deadline,
    /// less a margin), when that is shorter.
    pub fn within(self, left: Duration) -> Self {
        Self {
            budget: self.budget.min(left),
            ..self
        }
    }
}

impl Default for Pacing {
    /// The data plane's clean job values (reference §4.2): 1 s doubling up to 1 min, 8 tries.
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(600),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            attempts: 8,
        }
    }
}

/// Deletes `ids[progress.cursor..]` one at a time: each is read first (`DescribeSnapshots`) and
/// deleted only when `owns` says so (else left and listed in `not_owned`; a missing one counts
/// as `not_found`), at most `per_second` deletion calls per second (throttled attempts
/// included), backing off on throttling. Never waits past `pacing.budget`: before a read, and
/// before every wait for the next slot or for a backoff, it returns with the cursor at the
/// snapshot not yet done when that wait would end past the budget. Returns the advanced progress
/// (`done` when every id is processed).
pub async fn delete_paced<V: Volumes>(
    volumes: &V,
    ids: &[String],
    owns: &(dyn Fn(&SnapshotInfo) -> bool + Send + Sync),
    per_second: f64,
    pacing: Pacing,
    mut progress: SnapshotProgress,
) -> Result<SnapshotProgress, StepError> {
    let started = tokio::time::Instant::now();
    // `None`: no budget (Duration::MAX does not fit an Instant).
    let end = started.checked_add(pacing.budget);
    let past_budget = |at: tokio::time::Instant| end.is_some_and(|e| at >= e);
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let mut next_slot = tokio::time::Instant::now();
    while progress.cursor < ids.len() {
        // Stop before a call that could not start within the budget.
        if past_budget(next_slot.max(tokio::time::Instant::now())) {
            return Ok(progress);
        }
        let id = &ids[progress.cursor];
        // Read right before the delete: deleted only if it is still the owner's.
        let info = volumes
            .describe_snapshots(std::slice::from_ref(id))
            .await?
            .into_iter()
            .find(|i| &i.id == id);
        match info {
            None => {
                progress.not_found += 1;
                progress.cursor += 1;
                continue;
            }
            Some(info) if !owns(&info) => {
                tracing::warn!(snapshot = %id, tags = ?info.tags, "snapshot is not the owner's: left");
                if progress.not_owned.len() < REPORT_LIMIT {
                    progress.not_owned.push(id.clone());
                }
                progress.cursor += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut backoff = pacing.first_backoff;
        let mut attempt = 0;
        loop {
            // A wait (the rate's slot, or a throttling backoff) that would end past the budget
            // is not started: the next invocation takes this snapshot up again.
            if past_budget(next_slot) {
                return Ok(progress);
            }
            tokio::time::sleep_until(next_slot).await;
            next_slot = tokio::time::Instant::now() + interval;
            attempt += 1;
            match volumes.delete_snapshot(id).await? {
                SnapshotDeletion::Deleted => progress.deleted += 1,
                SnapshotDeletion::NotFound => progress.not_found += 1,
                SnapshotDeletion::Throttled if attempt < pacing.attempts => {
                    progress.throttled += 1;
                    tracing::info!(snapshot = %id, backoff_ms = backoff.as_millis() as u64, "EC2 throttled DeleteSnapshot; backing off");
                    next_slot = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(pacing.max_backoff);
                    continue;
                }
                SnapshotDeletion::Throttled => {
                    return Err(StepError::Ec2Unavailable(format!(
                        "DeleteSnapshot {id} throttled {attempt} times in a row"
                    )));
                }
            }
            break;
        }
        progress.cursor += 1;
    }
    progress.done = true;
    Ok(progress)
}
