//! Injecting a cell's fault into a running execution and waiting for its end.

use super::checks::{short, tally, task_errors};
use super::disrupt::{function_instances, kill9, stop_plane};
use super::probe::{AtPhase, Probe};
use super::{Cell, CellResult, Fault};
use crate::dataplane::World;
use crate::workflow::{Finished, Workflows};
use chrono::{DateTime, Utc};
use kube::Api;
use kube::api::DynamicObject;
use std::time::{Duration, Instant};

/// The world as every cell sees it.
pub struct Ctx {
    /// Data planes, EC2/S3, the simulator.
    pub world: World,
    /// Step Functions.
    pub flows: Workflows,
}

/// What the injection did.
#[derive(Debug, Default)]
pub struct Injected {
    /// When the fault happened (see docs/reliability.md for each kind).
    pub fault_at: Option<DateTime<Utc>>,
    /// The fault really happened as the cell describes it.
    pub produced: bool,
    /// How the execution ended (`None`: still running at the timeout).
    pub finished: Option<Finished>,
    /// What happened on the way.
    pub notes: Vec<String>,
}

/// How long any execution of a cell may take.
pub const RUN: Duration = Duration::from_secs(240);

async fn wait_observe_inflight(function: &str, timeout: Duration) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let f = function.to_string();
        let (_, inflight) = tokio::task::spawn_blocking(move || function_instances(&f))
            .await
            .unwrap_or_default();
        if inflight > 0 {
            return true;
        }
        if tokio::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// brfed deletes an `Invalid` initialize member at once (its init job would keep GC paused), often
/// before the 250 ms probe sees it: the catalog document then records the member's last phase and
/// `deletedAt`. Returns that time when the fault plane's member is recorded so.
async fn deleted_failing_member(ctx: &Ctx, cell: &Cell, arn: &str) -> Option<DateTime<Utc>> {
    let name = arn.rsplit(':').next()?;
    let doc = crate::workflow::catalog_doc(&ctx.world, "br", name).await?;
    let entry = doc["status"]["backups"]
        .as_array()?
        .iter()
        .find(|b| b["k8sClusterName"] == cell.fault_plane())?
        .clone();
    let phase = entry["phase"].as_str().unwrap_or_default();
    let failing = phase.ends_with("Invalid") || phase.ends_with("Failed");
    let at = entry["deletedAt"].as_str()?;
    failing
        .then(|| DateTime::parse_from_rfc3339(at).ok())
        .flatten()
        .map(|t| t.with_timezone(&Utc))
}

/// The cell's execution: starts `state_machine` with `input` (execution `name`) while a probe
/// watches its member `fed-{name}` in the fault planes (`member_api` gives its API in a plane)
/// for `at`, injects the fault and waits for the end; records on `r` the injection's notes and
/// how the execution ended (status, error, cause, the errors its tasks were retried or caught
/// on). `None` when it was still running after [`RUN`] (`r` then says so, with the cell's time
/// since `started`).
pub async fn execute(
    ctx: &Ctx,
    cell: &Cell,
    (state_machine, name, input): (&str, &str, &serde_json::Value),
    member_api: impl Fn(&str) -> Api<DynamicObject>,
    at: AtPhase,
    r: &mut CellResult,
    started: Instant,
) -> Option<(Injected, Finished)> {
    let apis = fault_planes(&ctx.world, cell)
        .iter()
        .map(|p| member_api(p))
        .collect();
    let probe = Probe::start(apis, format!("fed-{name}"), at);
    let arn = ctx.flows.start(state_machine, name, input).await;
    let mut inj = inject_and_wait(ctx, cell, &probe, &arn).await;
    drop(probe);
    r.notes.append(&mut inj.notes);
    let Some(done) = inj.finished.take() else {
        r.status = "RUNNING".into();
        r.notes
            .push(format!("execution still RUNNING after {RUN:?}"));
        r.seconds = started.elapsed().as_secs_f64();
        return None;
    };
    r.status = done.status.clone();
    r.error = done.error.clone();
    r.cause = done.cause.as_deref().map(|c| short(c, 300));
    let errors = task_errors(&ctx.flows, &arn).await;
    if !errors.is_empty() {
        r.notes.push(format!(
            "task errors (retried or caught): {}",
            tally(&errors)
        ));
    }
    Some((inj, done))
}

/// Injects `cell`'s fault into execution `arn` (the fault annotation is already in its input) and
/// waits for the execution to end.
pub async fn inject_and_wait(ctx: &Ctx, cell: &Cell, probe: &Probe, arn: &str) -> Injected {
    let mut inj = Injected {
        produced: true,
        ..Injected::default()
    };
    if matches!(
        cell.fault,
        Fault::Stopped | Fault::ApiDown | Fault::ApiRestart | Fault::LambdaKill
    ) {
        match probe.wait_at_phase(Duration::from_secs(150)).await {
            None => {
                inj.produced = false;
                inj.notes.push(format!(
                    "the {} member never reached {}: fault not injected",
                    cell.fault_plane(),
                    cell.phase
                ));
            }
            Some(_) => match cell.fault {
                Fault::Stopped => {
                    inj.fault_at = Some(Utc::now());
                    let r = ctx
                        .flows
                        .sfn
                        .stop_execution()
                        .execution_arn(arn)
                        .error("FaultMatrixStop")
                        .cause("stopped by brfed-faults")
                        .send()
                        .await;
                    if let Err(e) = r {
                        inj.produced = false;
                        inj.notes.push(format!("StopExecution: {e:?}"));
                    }
                }
                Fault::ApiDown => {
                    inj.fault_at = Some(Utc::now());
                    match blocking(|| stop_plane("dp2")).await {
                        Ok(down) => {
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            if let Err(e) = blocking(move || down.start()).await {
                                inj.notes.push(e);
                            }
                        }
                        Err(e) => {
                            inj.produced = false;
                            inj.notes.push(e);
                        }
                    }
                }
                Fault::ApiRestart => {
                    if !wait_observe_inflight(cell.observe_function(), Duration::from_secs(20))
                        .await
                    {
                        inj.notes
                            .push("no observe invocation in flight at the restart".into());
                    }
                    inj.fault_at = Some(Utc::now());
                    match blocking(|| stop_plane("dp2")).await {
                        Ok(down) => {
                            if let Err(e) = blocking(move || down.start()).await {
                                inj.notes.push(e);
                            }
                        }
                        Err(e) => {
                            inj.produced = false;
                            inj.notes.push(e);
                        }
                    }
                }
                Fault::LambdaKill => {
                    let f = cell.observe_function();
                    if !wait_observe_inflight(f, Duration::from_secs(20)).await {
                        inj.produced = false;
                        inj.notes
                            .push(format!("no {f} invocation in flight to kill"));
                    } else {
                        // let the invocation get into its watch
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let fname = f.to_string();
                        let (pids, inflight) = blocking(move || function_instances(&fname)).await;
                        inj.fault_at = Some(Utc::now());
                        let killed = kill9(&pids);
                        inj.notes.push(format!(
                            "{f}: {inflight} in flight; kill -9 of its {} instance(s): {}",
                            pids.len(),
                            killed.join(", ")
                        ));
                    }
                }
                _ => {}
            },
        }
    }
    inj.finished = super::checks::wait_execution(&ctx.flows, arn, RUN).await;
    if cell.fault == Fault::Stopped
        && let Some(at) = inj.fault_at
        && let Ok(d) = ctx
            .flows
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
        && let Some(stop) = d.stop_date()
    {
        let ms = stop.to_millis().unwrap_or_default() - at.timestamp_millis();
        inj.notes.push(format!(
            "the execution's stopDate is {} after StopExecution (the emulator ends an execution between states: the in-flight Task finishes first)",
            super::checks::secs(ms)
        ));
    }
    match cell.fault {
        Fault::Failed | Fault::Invalid => {
            inj.fault_at = probe.failed();
            if inj.fault_at.is_none()
                && let Some(at) = deleted_failing_member(ctx, cell, arn).await
            {
                inj.fault_at = Some(at);
                inj.notes.push(format!(
                    "the {} member was deleted by brfed before the probe saw it; the catalog records it {} (deletedAt, used as the time of the fault)",
                    cell.fault_plane(),
                    if cell.fault == Fault::Invalid { "Invalid" } else { "Failed" }
                ));
            }
            if inj.fault_at.is_none() {
                inj.produced = false;
                inj.notes.push(format!(
                    "no {} member was seen Failed/Invalid",
                    cell.fault_plane()
                ));
            }
        }
        Fault::Deadline => {
            inj.fault_at = probe.at_phase();
            if inj.fault_at.is_none() {
                inj.produced = false;
                inj.notes.push(format!(
                    "the {} member was never seen at {}",
                    cell.fault_plane(),
                    cell.phase
                ));
            }
        }
        _ => {}
    }
    inj
}

/// Apis of the planes a cell's fault applies to.
pub fn fault_planes(world: &World, cell: &Cell) -> Vec<String> {
    match cell.fault_plane() {
        "*" => world.plane_names(3),
        p => vec![p.to_string()],
    }
}
