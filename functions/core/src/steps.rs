//! The backup steps, one function per Lambda, generic over the ports. Each is idempotent: run
//! again after a crash or a Step Functions retry it finds its own earlier work (the catalog
//! document's execution, the members' annotations and phase fields) and does nothing twice.

use crate::backup::{Await, Failure, Verdict, judge, views};
use crate::catalog::{Catalog, VolumeBackupDoc};
use crate::error::StepError;
use crate::member::{MemberRef, MemberView, build_member_backup, cond, phase};
use crate::ports::{Created, DataPlanes, MemberKind, ObjectStore, Observation};
use crate::spec::{BackupRequest, ObserveMode, Options};
use crate::status::{VolumeBackupStatus, rfc3339, vbk};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

/// What every step is given besides its input.
pub struct Env<'a, D, S> {
    /// The data planes.
    pub planes: &'a D,
    /// S3.
    pub store: &'a S,
    /// Bucket of the catalog.
    pub catalog_bucket: &'a str,
    /// Longest time one observe invocation may watch.
    pub observe_budget: Duration,
}

impl<D, S: ObjectStore> Env<'_, D, S> {
    fn catalog(&self) -> Catalog<'_, S> {
        Catalog::new(self.store, self.catalog_bucket)
    }
}

/// The small state a backup execution carries from step to step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupContext {
    /// Federated backup name (= execution name).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Execution ARN.
    pub execution: String,
    /// Members in `spec.clusters` order; `members[0]` initializes.
    pub members: Vec<MemberRef>,
    /// Options in force.
    pub options: Options,
    /// Overall deadline, RFC 3339.
    pub deadline: String,
}

/// The phase the execution is in, and since when (for phase deadlines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// Phase name.
    pub name: String,
    /// RFC 3339 with ms.
    pub started_at: String,
}

impl Phase {
    fn now(name: &str) -> Self {
        Self {
            name: name.into(),
            started_at: now_ms(),
        }
    }
}

pub(crate) fn now_ms() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, StepError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StepError::Internal(format!("bad time `{s}` in state: {e}")))
}

/// When an observe step must give up, under which failure name, and how long it may watch: the
/// earlier of the phase deadline and the overall one; no watch at all in poll mode.
pub(crate) fn wait_window(
    phase: &Phase,
    phase_timeout_seconds: u64,
    overall_deadline: &str,
    mode: ObserveMode,
    observe_budget: Duration,
) -> Result<(DateTime<Utc>, &'static str, Duration), StepError> {
    let phase_deadline =
        parse_time(&phase.started_at)? + chrono::Duration::seconds(phase_timeout_seconds as i64);
    let overall = parse_time(overall_deadline)?;
    let (deadline, name) = if phase_deadline < overall {
        (phase_deadline, "PhaseDeadlineExceeded")
    } else {
        (overall, "DeadlineExceeded")
    };
    let budget = match mode {
        ObserveMode::Poll => Duration::ZERO,
        ObserveMode::Watch => {
            observe_budget.min((deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO))
        }
    };
    Ok((deadline, name, budget))
}

/// Input of the start step: the execution input and the execution's identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartInput {
    /// Whatever the execution was started with (a `VolumeBackup`, YAML-derived JSON).
    pub input: Value,
    /// `$$.Execution.Id`.
    pub execution: String,
}

/// Output of the start step: the whole initial state of the execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartOutput {
    /// Context.
    pub backup: BackupContext,
    /// Phase `Initialize`.
    pub phase: Phase,
    /// Always null at start (the failure path fills it).
    pub failure: Option<Failure>,
    /// Always null at start.
    pub observed: Option<ObserveOutput>,
}

/// Input of the mutating steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInput {
    /// Context.
    pub backup: BackupContext,
    /// Why the backup is failing, on the failure path.
    #[serde(default)]
    pub failure: Option<Failure>,
}

/// Input of the observe step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObserveInput {
    /// Context.
    pub backup: BackupContext,
    /// What to wait for.
    #[serde(rename = "await")]
    pub awaited: Await,
    /// Current phase.
    pub phase: Phase,
}

/// Output of the observe step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObserveOutput {
    /// `met`, `pending` or `failed`.
    pub verdict: String,
    /// On `failed`.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// Seconds the state machine should wait before observing again (0 in watch mode).
    pub wait_seconds: u64,
}

/// Input of the finalize step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizeInput {
    /// Context.
    pub backup: BackupContext,
    /// Why the backup failed, if it did.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The last observation (of the teardown wait).
    #[serde(default)]
    pub observed: Option<ObserveOutput>,
}

fn member_of(view: &MemberView, execution: &str, namespace: &str) -> bool {
    view.execution.as_deref() == Some(execution)
        && view.federation_namespace.as_deref().unwrap_or(namespace) == namespace
}

/// Start: validate, check every data plane and prefix (reporting every problem at once), record
/// the backup in the catalog, and create the initialize member in `clusters[0]`.
pub async fn start<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: StartInput,
) -> Result<StartOutput, StepError> {
    let req = BackupRequest::from_value(input.input)?;
    req.validate(None)?;
    if let Err(StepError::InvalidSpec(m)) = req.validate(Some(&env.planes.cluster_names())) {
        return Err(StepError::UnknownCluster(m));
    }
    let execution = input.execution;
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let members: Vec<MemberRef> = req
        .spec
        .clusters
        .iter()
        .map(|c| MemberRef::new(c, &name))
        .collect();

    let existing = env.catalog().get(&ns, &name).await?;
    let resumed = match &existing {
        Some((doc, _)) if doc.brfed.execution == execution => true,
        Some((doc, _)) => return Err(StepError::BackupExists(backup_exists_message(doc))),
        None => false,
    };
    if !resumed && let Err(e) = preflight(env, &req, Some(&execution)).await.into_result() {
        // Another start of this backup won meanwhile (its document, then its members, were
        // created after the read above): name that, not the member it made.
        if matches!(e, StepError::MemberNameConflict(_))
            && let Some((doc, _)) = env.catalog().get(&ns, &name).await?
            && doc.brfed.execution != execution
        {
            return Err(StepError::BackupExists(backup_exists_message(&doc)));
        }
        return Err(e);
    }
    let now = Utc::now();
    let mut doc = VolumeBackupDoc::new(&req, &execution, members.clone(), &rfc3339(now));
    doc.status.set_condition(vbk::RUNNING, None, None, now);
    let doc = env.catalog().create(&doc).await?;
    if doc.brfed.execution != execution {
        return Err(StepError::BackupExists(format!(
            "VolumeBackup {ns}/{name} was just created by {}",
            doc.brfed.execution
        )));
    }
    let init = &members[0];
    let object = build_member_backup(&req, init, phase::INITIALIZE, &execution);
    ensure_member(env, init, &object, &execution, &ns).await?;
    let deadline = now + chrono::Duration::seconds(req.options.deadline_seconds as i64);
    Ok(StartOutput {
        backup: BackupContext {
            name,
            namespace: ns,
            execution,
            members,
            options: req.options.clone(),
            deadline: rfc3339(deadline),
        },
        phase: Phase::now("Initialize"),
        failure: None,
        observed: None,
    })
}

/// One problem a [`preflight`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The problem by itself: its name says what kind, its message what is wrong.
    pub error: StepError,
    /// How [`Preflight::into_result`] words it inside the one error it makes of a kind.
    summary: String,
    /// Found in S3 (catalog, prefixes) rather than in a data plane.
    from_store: bool,
}

impl Problem {
    /// A problem the preflight words itself: the message is the summary.
    fn found(error: StepError) -> Self {
        let summary = match &error {
            StepError::DataPlaneUnreachable(m)
            | StepError::UnknownCluster(m)
            | StepError::BackupExists(m)
            | StepError::MemberNameConflict(m)
            | StepError::TidbClusterInvalid(m) => m.clone(),
            other => other.to_string(),
        };
        Self {
            error,
            summary,
            from_store: false,
        }
    }

    /// An error a data plane answered: an unreachable one by its message, others whole.
    fn answered(error: StepError) -> Self {
        let summary = match &error {
            StepError::DataPlaneUnreachable(m) => m.clone(),
            other => other.to_string(),
        };
        Self {
            error,
            summary,
            from_store: false,
        }
    }

    /// A problem found in S3.
    fn stored(error: StepError, summary: String) -> Self {
        Self {
            error,
            summary,
            from_store: true,
        }
    }
}

/// Everything that keeps a backup from starting, found without a side effect: every problem of
/// every kind at once (`brfed preflight` shows them all; [`start`] turns them into one error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preflight {
    /// In the order found: per member in `spec.clusters` order, then the S3 prefixes.
    pub problems: Vec<Problem>,
}

impl Preflight {
    /// No problem.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The one error [`start`] returns: the most actionable kind first — an unreachable data
    /// plane (retryable), an unknown one, an existing backup, a member name conflict, a
    /// TidbCluster (or other data-plane) problem, the catalog failing, a used S3 prefix — with
    /// every message of that kind.
    pub fn into_result(self) -> Result<(), StepError> {
        let joined = |name: &str| {
            let parts: Vec<&str> = self
                .problems
                .iter()
                .filter(|p| p.error.name() == name)
                .map(|p| p.summary.as_str())
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        };
        if let Some(m) = joined("DataPlaneUnreachable") {
            return Err(StepError::DataPlaneUnreachable(m));
        }
        if let Some(m) = joined("UnknownCluster") {
            return Err(StepError::UnknownCluster(m));
        }
        if let Some(m) = joined("BackupExists") {
            return Err(StepError::BackupExists(m));
        }
        if let Some(m) = joined("MemberNameConflict") {
            return Err(StepError::MemberNameConflict(m));
        }
        let data_plane: Vec<&str> = self
            .problems
            .iter()
            .filter(|p| !p.from_store)
            .map(|p| p.summary.as_str())
            .collect();
        if !data_plane.is_empty() {
            return Err(StepError::TidbClusterInvalid(data_plane.join("; ")));
        }
        if let Some(p) = self
            .problems
            .iter()
            .find(|p| !matches!(p.error, StepError::S3PrefixInUse(_)))
        {
            return Err(p.error.clone());
        }
        if let Some(m) = joined("S3PrefixInUse") {
            return Err(StepError::S3PrefixInUse(format!(
                "{m} already exist: every backup needs its own spec.template.s3.prefix"
            )));
        }
        Ok(())
    }
}

/// The checks [`start`] runs before its first side effect, on their own and reporting every
/// problem: the data planes are known and answer (with the `Backup` CRD), no other backup of
/// that namespace/name is in the catalog, each TidbCluster exists, is `acrossK8s` and has TiKV
/// stores, no member `fed-{name}` belongs to something else, and no member S3 prefix holds a
/// `clustermeta`. Reads only. `execution` is the execution the backup runs as (its own member
/// objects and catalog document are not problems); `None` for a dry run. `req` must be valid
/// ([`BackupRequest::validate`] with no known clusters).
pub async fn preflight<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    req: &BackupRequest,
    execution: Option<&str>,
) -> Preflight {
    let name = req.name();
    let ns = &req.metadata.namespace;
    let known = env.planes.cluster_names();
    let mut report = Preflight::default();
    let unknown: Vec<String> = req
        .spec
        .clusters
        .iter()
        .enumerate()
        .filter(|(_, c)| !known.contains(&c.k8s_cluster_name))
        .map(|(i, c)| {
            let mut k: Vec<_> = known.iter().cloned().collect();
            k.sort();
            format!(
                "spec.clusters[{i}].k8sClusterName `{}` is not a known data plane (known: {})",
                c.k8s_cluster_name,
                k.join(", ")
            )
        })
        .collect();
    report.problems.extend(
        unknown
            .into_iter()
            .map(|m| Problem::found(StepError::UnknownCluster(m))),
    );
    match env.catalog().get(ns, name).await {
        Ok(Some((doc, _))) if Some(doc.brfed.execution.as_str()) != execution => {
            report.problems.push(Problem::found(StepError::BackupExists(
                backup_exists_message(&doc),
            )));
        }
        Ok(_) => {}
        Err(e) => report
            .problems
            .push(Problem::stored(e.clone(), e.to_string())),
    }
    let members: Vec<MemberRef> = req
        .spec
        .clusters
        .iter()
        .filter(|c| known.contains(&c.k8s_cluster_name))
        .map(|c| MemberRef::new(c, name))
        .collect();
    let checks = members.iter().map(|m| async move {
        let mut found = Vec::new();
        if let Err(e) = env.planes.probe(&m.k8s_cluster_name).await {
            let mut problem = Problem::answered(e);
            if !matches!(problem.error, StepError::DataPlaneUnreachable(_)) {
                problem.summary = format!("{}: {}", m.k8s_cluster_name, problem.error);
            }
            found.push(problem);
            return found;
        }
        match env
            .planes
            .get_tidb_cluster(&m.k8s_cluster_name, &m.tc_namespace, &m.tc_name)
            .await
        {
            Ok(None) => found.push(Problem::found(StepError::TidbClusterInvalid(format!(
                "TidbCluster {}/{} does not exist in {}",
                m.tc_namespace, m.tc_name, m.k8s_cluster_name
            )))),
            Ok(Some(tc)) => found.extend(
                tidb_cluster_problems(m, &tc)
                    .into_iter()
                    .map(|p| Problem::found(StepError::TidbClusterInvalid(p))),
            ),
            Err(e) => found.push(Problem::answered(e)),
        }
        match env.planes.get_member(MemberKind::Backup, m).await {
            Ok(Some(obj)) => {
                let v = MemberView::from_object(&obj);
                if execution.is_none_or(|x| !member_of(&v, x, ns)) {
                    found.push(Problem::found(StepError::MemberNameConflict(format!(
                        "Backup {}/{} already exists in {} and belongs to {}",
                        m.tc_namespace,
                        m.backup_name,
                        m.k8s_cluster_name,
                        v.execution.as_deref().unwrap_or("something else")
                    ))));
                }
            }
            Ok(None) => {}
            Err(e) => found.push(Problem::answered(e)),
        }
        found
    });
    report
        .problems
        .extend(join_all(checks).await.into_iter().flatten());
    let bucket = req.bucket();
    for c in &req.spec.clusters {
        let key = format!("{}/clustermeta", req.member_prefix(&c.k8s_cluster_name));
        match env.store.exists(bucket, &key).await {
            Ok(true) => report
                .problems
                .push(Problem::stored(
                    StepError::S3PrefixInUse(format!(
                        "s3://{bucket}/{key} already exists: every backup needs its own spec.template.s3.prefix"
                    )),
                    format!("s3://{bucket}/{key}"),
                )),
            Ok(false) => {}
            Err(e) => report.problems.push(Problem::stored(e.clone(), e.to_string())),
        }
    }
    report
}

fn backup_exists_message(doc: &VolumeBackupDoc) -> String {
    format!(
        "VolumeBackup {}/{} already exists (execution {}, phase {}); choose another name",
        doc.metadata.meta.namespace,
        doc.metadata.meta.name,
        doc.brfed.execution,
        doc.status.phase.as_deref().unwrap_or("unknown")
    )
}

/// What keeps a TidbCluster from a volume-snapshot backup (the data plane's own validation,
/// reference §3.1 step 1), checked up front.
pub fn tidb_cluster_problems(m: &MemberRef, tc: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let at = format!(
        "TidbCluster {}/{} in {}",
        m.tc_namespace, m.tc_name, m.k8s_cluster_name
    );
    if tc["spec"]["acrossK8s"].as_bool() != Some(true) {
        p.push(format!("{at} does not have spec.acrossK8s: true"));
    }
    if tc["spec"]["tikv"]["replicas"].as_i64().unwrap_or(0) <= 0 {
        p.push(format!("{at} has no TiKV replicas"));
    }
    if tc["status"]["tikv"]["stores"]
        .as_object()
        .is_none_or(|s| s.is_empty())
    {
        p.push(format!("{at} reports no TiKV stores in status.tikv.stores"));
    }
    p
}

async fn ensure_member<D: DataPlanes, S>(
    env: &Env<'_, D, S>,
    m: &MemberRef,
    object: &Value,
    execution: &str,
    namespace: &str,
) -> Result<(), StepError> {
    // (an API server that does not serve Backups yet is `DataPlaneUnreachable`: the adapter's
    // `classify`)
    match env
        .planes
        .create_member(MemberKind::Backup, &m.k8s_cluster_name, object)
        .await?
    {
        Created::Created => {
            tracing::info!(cluster = %m.k8s_cluster_name, member = %m.backup_name, "member created");
            Ok(())
        }
        Created::AlreadyExists(obj) => {
            let v = MemberView::from_object(&obj);
            if member_of(&v, execution, namespace) {
                Ok(())
            } else {
                Err(StepError::MemberNameConflict(format!(
                    "Backup {}/{} in {} belongs to {}",
                    m.tc_namespace,
                    m.backup_name,
                    m.k8s_cluster_name,
                    v.execution.as_deref().unwrap_or("something else")
                )))
            }
        }
    }
}

/// Execute: move the initialize member to `execute` and create the other members in `execute`.
/// Every data plane is tried; those that could not be told are named together in one
/// `DataPlaneUnreachable` (retried by the state machine, which then creates what is missing).
pub async fn execute<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: StepInput,
) -> Result<Phase, StepError> {
    let ctx = &input.backup;
    let (doc, _) = env
        .catalog()
        .get(&ctx.namespace, &ctx.name)
        .await?
        .ok_or_else(|| {
            StepError::CatalogUnavailable(format!(
                "no catalog document for {}/{}",
                ctx.namespace, ctx.name
            ))
        })?;
    let req = doc.request();
    let init = &ctx.members[0];
    let current = env
        .planes
        .get_member(MemberKind::Backup, init)
        .await?
        .ok_or_else(|| {
            StepError::MemberMissing(format!("initialize member {} is gone", init.display()))
        })?;
    if MemberView::from_object(&current).federal_phase.as_deref() == Some(phase::INITIALIZE) {
        env.planes
            .patch_member_spec(
                MemberKind::Backup,
                init,
                &json!({"federalVolumeBackupPhase": phase::EXECUTE}),
            )
            .await?;
    }
    let creations = ctx.members[1..].iter().map(|m| {
        let object = build_member_backup(&req, m, phase::EXECUTE, &ctx.execution);
        async move { ensure_member(env, m, &object, &ctx.execution, &ctx.namespace).await }
    });
    // Every plane is tried; a plane that could not be told is named, with every other one.
    let errors: Vec<StepError> = join_all(creations)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if let Some(e) = errors.iter().find(|e| !e.is_retryable()) {
        return Err(e.clone());
    }
    let unreachable: Vec<&str> = errors
        .iter()
        .filter_map(|e| match e {
            StepError::DataPlaneUnreachable(m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    match errors.first() {
        None => Ok(Phase::now("Execute")),
        Some(_) if unreachable.len() == errors.len() => {
            Err(StepError::DataPlaneUnreachable(unreachable.join("; ")))
        }
        Some(e) => Err(e.clone()),
    }
}

/// Resume GC and scheduling: ask the initialize member to resume (`resumeGcSchedule: true`).
pub async fn resume_gc<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: StepInput,
) -> Result<Phase, StepError> {
    let ctx = &input.backup;
    env.planes
        .patch_member_spec(
            MemberKind::Backup,
            &ctx.members[0],
            &json!({"resumeGcSchedule": true}),
        )
        .await?;
    let at = now_ms();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            if d.brfed.resume_requested_at.is_some() {
                return false;
            }
            d.brfed.resume_requested_at = Some(at.clone());
            true
        })
        .await?;
    Ok(Phase::now("ResumeGc"))
}

/// Result of a teardown request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeardownReport {
    /// Members moved to `teardown` now.
    pub requested: Vec<String>,
    /// Members already in teardown.
    pub already: Vec<String>,
    /// Members that were never created.
    pub absent: Vec<String>,
    /// Data planes that could not be reached.
    pub unreachable: Vec<String>,
    /// Objects of the member's name that belong to something else: left alone.
    pub foreign: Vec<String>,
    /// Members deleted now, or found being deleted: an `Invalid` initialize member, whose
    /// data plane acts on neither `teardown` nor `resumeGcSchedule`; deleting it stops its init
    /// job, which resumes GC and schedulers ([`MemberView::strands_init_job`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    /// Members that had not settled when the step looked last ([`unsettled_members`]; filled by
    /// `backup-abort`, which fails `MembersRunning` while it is not empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsettled: Vec<String>,
}

/// Moves every existing member to `teardown`; the initialize member is always asked to resume GC
/// and schedulers too, and is deleted instead when it is `Invalid` with its init job possibly
/// alive. Best effort over all members before reporting unreachable ones. Members that belong
/// to another execution (a name conflict) are never touched.
pub async fn request_teardown<D: DataPlanes>(
    planes: &D,
    members: &[MemberRef],
    execution: &str,
) -> TeardownReport {
    teardown_members(planes, members, execution).await.0
}

/// [`request_teardown`], with what each deleted member was when it was deleted.
async fn teardown_members<D: DataPlanes>(
    planes: &D,
    members: &[MemberRef],
    execution: &str,
) -> (TeardownReport, Vec<(MemberRef, MemberView)>) {
    let work = members.iter().enumerate().map(|(i, m)| async move {
        let obj = match planes.get_member(MemberKind::Backup, m).await {
            Ok(Some(o)) => o,
            Ok(None) => return ("absent", m.display(), None),
            Err(e) => return ("unreachable", format!("{}: {e}", m.display()), None),
        };
        let v = MemberView::from_object(&obj);
        if v.execution.as_deref() != Some(execution) {
            return ("foreign", m.display(), None);
        }
        // Every change below only if the object is still the one just read (UID precondition):
        // one of that name made meanwhile by something else is left alone.
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        if i == 0 && v.strands_init_job() {
            if v.deleting {
                return ("deleted", m.display(), Some(v));
            }
            return match planes.delete_member_if(MemberKind::Backup, m, uid).await {
                Ok(_) => {
                    tracing::warn!(member = %m.display(), "initialize member is Invalid: deleted so that its init job stops and GC resumes");
                    ("deleted", m.display(), Some(v))
                }
                Err(e) if uid_changed(&e) => ("foreign", m.display(), None),
                Err(e) => (
                    "unreachable",
                    format!("{}: delete: {e}", m.display()),
                    None,
                ),
            };
        }
        let needs_resume = i == 0 && !v.resume_gc_schedule;
        if v.federal_phase.as_deref() == Some(phase::TEARDOWN) && !needs_resume {
            return ("already", m.display(), None);
        }
        let mut patch = json!({"federalVolumeBackupPhase": phase::TEARDOWN});
        if i == 0 {
            patch["resumeGcSchedule"] = json!(true);
        }
        match planes
            .patch_member_if(MemberKind::Backup, m, uid, &json!({ "spec": patch }))
            .await
        {
            Ok(()) => ("requested", m.display(), None),
            Err(StepError::MemberMissing(_)) => ("absent", m.display(), None),
            Err(e) if uid_changed(&e) => ("foreign", m.display(), None),
            Err(e) => ("unreachable", format!("{}: {e}", m.display()), None),
        }
    });
    let mut r = TeardownReport::default();
    let mut deleted = Vec::new();
    for ((kind, what, view), m) in join_all(work).await.into_iter().zip(members) {
        match kind {
            "requested" => r.requested.push(what),
            "already" => r.already.push(what),
            "absent" => r.absent.push(what),
            "foreign" => r.foreign.push(what),
            "deleted" => {
                r.deleted.push(what);
                if let Some(v) = view {
                    deleted.push((m.clone(), v));
                }
            }
            _ => r.unreachable.push(what),
        }
    }
    (r, deleted)
}

/// Whether a data plane refused a change because the object's UID is no longer the one read
/// (409 on a UID precondition: another object of that name now). Any other refusal (RBAC,
/// validation) is not taken for "not ours": the member stays to be asked again.
fn uid_changed(e: &StepError) -> bool {
    matches!(e, StepError::DataPlaneRejected(m) if m.contains(" 409 "))
}

/// Records in `status` the members [`teardown_members`] deleted. An initialize member found
/// absent that brfed last saw `Invalid` was deleted by an earlier teardown whose record was not
/// written (the step failed after the deletion and was retried): recorded too.
fn record_deleted(
    status: &mut VolumeBackupStatus,
    members: &[MemberRef],
    report: &TeardownReport,
    deleted: &[(MemberRef, MemberView)],
    at: &str,
) {
    for (m, v) in deleted {
        status.mark_deleted(m, Some(v), at);
    }
    if let Some(init) = members.first()
        && report.absent.contains(&init.display())
        && status
            .member(init)
            .is_some_and(|b| b.phase == cond::INVALID)
    {
        status.mark_deleted(init, None, at);
    }
}

/// What a failure message adds when brfed deleted members: which, and why.
fn deleted_note(status: &VolumeBackupStatus) -> String {
    let deleted = status.deleted_members();
    if deleted.is_empty() {
        return String::new();
    }
    format!(
        "; brfed deleted {} (Invalid initialize member: its data plane acts on neither teardown nor resumeGcSchedule, so deleting it is what stops its init job and resumes GC; its snapshots and backupmeta go or stay as cleanPolicy says)",
        deleted.join(", ")
    )
}

/// Teardown: every existing member to `teardown`, resume requested on the initialize member (an
/// `Invalid` one is deleted instead, and recorded in the catalog document).
/// Fails with `DataPlaneUnreachable` (retryable) if a data plane could not be told; the members
/// it could not tell are recorded (`brfed.teardownPending`), and `backup-finalize` asks them
/// again before it writes anything terminal.
pub async fn teardown<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: StepInput,
) -> Result<Phase, StepError> {
    let ctx = &input.backup;
    let report = teardown_and_record(env, ctx).await?;
    if !report.unreachable.is_empty() {
        return Err(StepError::DataPlaneUnreachable(format!(
            "teardown could not reach: {}",
            report.unreachable.join("; ")
        )));
    }
    Ok(Phase::now("Teardown"))
}

/// Asks every member to tear down ([`teardown_members`]) and records it in the catalog document:
/// when teardown was first requested, the members deleted, and the members it could not ask
/// (`teardown_pending`, emptied once every member was asked).
async fn teardown_and_record<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ctx: &BackupContext,
) -> Result<TeardownReport, StepError> {
    let (report, deleted) = teardown_members(env.planes, &ctx.members, &ctx.execution).await;
    tracing::info!(requested = ?report.requested, already = ?report.already, deleted = ?report.deleted, unreachable = ?report.unreachable, "teardown");
    let at = now_ms();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            let before = d.clone();
            d.brfed
                .teardown_requested_at
                .get_or_insert_with(|| at.clone());
            d.brfed.teardown_pending = report.unreachable.clone();
            record_deleted(&mut d.status, &ctx.members, &report, &deleted, &at);
            *d != before
        })
        .await?;
    Ok(report)
}

/// Reads every member, watching for up to `budget` until all have settled.
async fn observe_settling<D: DataPlanes>(
    planes: &D,
    ctx: &BackupContext,
    budget: Duration,
) -> Vec<Observation> {
    let settled =
        |obs: &[Observation]| unsettled_members(&ctx.members, obs, &ctx.execution).is_empty();
    planes
        .observe_members(MemberKind::Backup, &ctx.members, budget, &settled)
        .await
}

/// The members that have not settled: this execution's, present and not terminal (or being
/// deleted), or in a data plane that could not be read (`cluster/namespace/name phase`). Absent
/// members and objects of another execution have settled as far as this backup is concerned.
pub fn unsettled_members(
    members: &[MemberRef],
    obs: &[Observation],
    execution: &str,
) -> Vec<String> {
    members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match obs.get(i) {
            Some(Observation::Absent) => None,
            Some(Observation::Present(obj)) => {
                let v = MemberView::from_object(obj);
                if v.execution.as_deref() != Some(execution) || (v.terminal() && !v.deleting) {
                    return None;
                }
                let phase = if v.deleting {
                    "being deleted"
                } else {
                    v.phase.as_deref().unwrap_or("no phase yet")
                };
                Some(format!("{} {phase}", m.display()))
            }
            Some(Observation::Unreachable(e)) => Some(format!("{} unreachable ({e})", m.display())),
            None => Some(format!("{} not observed", m.display())),
        })
        .collect()
}

/// Observe: watch the members until the awaited condition holds, one fails, the watch budget
/// is spent, or a deadline passes.
pub async fn observe<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: ObserveInput,
) -> Result<ObserveOutput, StepError> {
    let ctx = &input.backup;
    let (deadline, deadline_name, budget) = wait_window(
        &input.phase,
        ctx.options.phase_timeout_seconds,
        &ctx.deadline,
        ctx.options.observe_mode,
        env.observe_budget,
    )?;
    let watched: &[MemberRef] = if input.awaited == Await::Initialized {
        &ctx.members[..1]
    } else {
        &ctx.members
    };
    let awaited = input.awaited;
    let done = move |obs: &[Observation]| judge(awaited, watched, obs) != Verdict::Pending;
    let obs = env
        .planes
        .observe_members(MemberKind::Backup, watched, budget, &done)
        .await;
    let mut verdict = judge(awaited, watched, &obs);
    if verdict == Verdict::Pending && Utc::now() >= deadline {
        let what = if deadline_name == "PhaseDeadlineExceeded" {
            format!(
                "phase {} ran longer than {} s",
                input.phase.name, ctx.options.phase_timeout_seconds
            )
        } else {
            format!(
                "the backup ran longer than {} s",
                ctx.options.deadline_seconds
            )
        };
        verdict = Verdict::Failed(Failure::new(
            deadline_name,
            format!("{what} while waiting for {}", awaited.describe()),
        ));
    }
    record_observation(env, ctx, awaited, &verdict, &obs).await?;
    let (name, failure) = match verdict {
        Verdict::Met => ("met", None),
        Verdict::Pending => ("pending", None),
        Verdict::Failed(f) => ("failed", Some(f)),
    };
    let wait_seconds = match (ctx.options.observe_mode, name) {
        (ObserveMode::Poll, "pending") => ctx.options.poll_seconds,
        _ => 0,
    };
    Ok(ObserveOutput {
        verdict: name.into(),
        failure,
        wait_seconds,
    })
}

async fn record_observation<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ctx: &BackupContext,
    awaited: Await,
    verdict: &Verdict,
    obs: &[Observation],
) -> Result<(), StepError> {
    let pairs: Vec<(MemberRef, Option<MemberView>)> =
        ctx.members.iter().cloned().zip(views(obs)).collect();
    let at = now_ms();
    let now = Utc::now();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            let before = d.clone();
            d.status.refresh_members(&pairs);
            if *verdict == Verdict::Met {
                match awaited {
                    Await::SnapshotsCreated if d.brfed.snapshots_created_observed_at.is_none() => {
                        d.brfed.snapshots_created_observed_at = Some(at.clone());
                    }
                    Await::GcResumed if !d.status.has(vbk::SNAPSHOTS_CREATED) => {
                        d.status
                            .set_condition(vbk::SNAPSHOTS_CREATED, None, None, now);
                    }
                    _ => {}
                }
            }
            *d != before
        })
        .await
        .map(|_| ())
}

/// Output of the finalize step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizeOutput {
    /// The final catalog document (the execution's output on success).
    pub document: VolumeBackupDoc,
    /// Failure name when the backup failed (the execution's error).
    pub error: Option<String>,
    /// What happened (the execution's cause).
    pub cause: Option<String>,
}

/// Finalize: read every member once more, decide Complete or Failed, and write the final
/// catalog document, which is also the execution's output.
pub async fn finalize<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: FinalizeInput,
) -> Result<FinalizeOutput, StepError> {
    let ctx = &input.backup;
    ask_pending_teardown(env, ctx).await?;
    let obs = env
        .planes
        .observe_members(
            MemberKind::Backup,
            &ctx.members,
            Duration::ZERO,
            &|_: &[Observation]| true,
        )
        .await;
    let pairs: Vec<(MemberRef, Option<MemberView>)> =
        ctx.members.iter().cloned().zip(views(&obs)).collect();
    let unsettled = unsettled_members(&ctx.members, &obs, &ctx.execution);
    let now = Utc::now();
    let document = env
        .catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            if d.status.is_terminal() {
                return false;
            }
            d.status.refresh_members(&pairs);
            d.brfed.members_settled = Some(unsettled.is_empty());
            d.brfed.unsettled_members = unsettled.clone();
            let failure = decide_failure(
                input.failure.as_ref(),
                input.observed.as_ref(),
                &pairs,
                &obs,
                &d.status,
            );
            let f = failure
                .as_ref()
                .map(|f| (f.error.as_str(), f.message() + &deleted_note(&d.status)));
            d.status
                .finish(f.as_ref().map(|(e, m)| (*e, m.as_str())), now);
            true
        })
        .await?;
    let failed =
        document.status.conditions.iter().rev().find(|c| {
            c.type_ == vbk::FAILED && document.status.phase.as_deref() == Some(vbk::FAILED)
        });
    let (error, cause) = match failed {
        Some(c) => (
            Some(c.reason.clone().unwrap_or_else(|| "MemberFailed".into())),
            Some(format!(
                "VolumeBackup {}/{} failed: {}",
                ctx.namespace,
                ctx.name,
                c.message.clone().unwrap_or_default()
            )),
        ),
        None => (None, None),
    };
    Ok(FinalizeOutput {
        document,
        error,
        cause,
    })
}

/// Before finalize writes anything terminal: members an earlier teardown could not ask
/// (`brfed.teardownPending`) are asked now. `DataPlaneUnreachable` while one still cannot be: the
/// state machine retries, and once it gives up the execution fails and `backup-abort` (the
/// execution status rule) takes over, retried by Lambda until every member was asked.
async fn ask_pending_teardown<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ctx: &BackupContext,
) -> Result<(), StepError> {
    let pending = match env.catalog().get(&ctx.namespace, &ctx.name).await? {
        Some((doc, _)) => !doc.status.is_terminal() && !doc.brfed.teardown_pending.is_empty(),
        None => false,
    };
    if !pending {
        return Ok(());
    }
    let report = teardown_and_record(env, ctx).await?;
    if !report.unreachable.is_empty() {
        return Err(StepError::DataPlaneUnreachable(format!(
            "teardown could not reach: {}; nothing is marked terminal before every member was asked",
            report.unreachable.join("; ")
        )));
    }
    Ok(())
}

/// Why a backup that reached finalize failed, if it did: the failure it carries, else what the
/// members say. `status` is the catalog's (refreshed from `pairs`): members brfed deleted count as
/// what they were, `Invalid`.
fn decide_failure(
    failure: Option<&Failure>,
    observed: Option<&ObserveOutput>,
    pairs: &[(MemberRef, Option<MemberView>)],
    obs: &[Observation],
    status: &VolumeBackupStatus,
) -> Option<Failure> {
    if let Some(f) = failure {
        return Some(f.clone());
    }
    if let Some(Failure { error, cause }) = observed.and_then(|o| o.failure.as_ref()) {
        return Some(Failure::new(
            "TeardownIncomplete",
            format!("{error}: {cause}"),
        ));
    }
    if let Some((m, _)) = pairs
        .iter()
        .find(|(_, v)| v.as_ref().is_some_and(|v| v.has(cond::INITIALIZE_FAILED)))
    {
        return Some(Failure::new(
            "InitializeFailed",
            format!("member {} is VolumeBackupInitializeFailed", m.display()),
        ));
    }
    // (member, Invalid?) of every member that ended Failed or Invalid, in spec order
    let deleted = |m: &MemberRef, o: &Observation| {
        !matches!(o, Observation::Present(_)) && status.is_deleted(m)
    };
    let failed: Vec<(&MemberRef, bool)> = pairs
        .iter()
        .zip(obs)
        .filter_map(|((m, v), o)| match v {
            Some(v) if v.has(cond::INVALID) => Some((m, true)),
            Some(v) if v.has(cond::FAILED) => Some((m, false)),
            _ if deleted(m, o) => Some((m, true)),
            _ => None,
        })
        .collect();
    if let Some((_, invalid)) = failed.first() {
        let names: Vec<_> = failed.iter().map(|(m, _)| m.backup_name.as_str()).collect();
        let clusters: Vec<_> = failed
            .iter()
            .map(|(m, _)| m.k8s_cluster_name.as_str())
            .collect();
        // named like the observe step names a failed member (`backup::judge`): the first one's
        return Some(Failure::new(
            if *invalid {
                "MemberInvalid"
            } else {
                "MemberFailed"
            },
            format!(
                "backup members {} of clusters {} failed",
                names.join(","),
                clusters.join(",")
            ),
        ));
    }
    let missing: Vec<String> = pairs
        .iter()
        .zip(obs)
        .filter(|(_, o)| !matches!(o, Observation::Present(_)))
        .map(|((m, _), _)| m.display())
        .collect();
    if !missing.is_empty() {
        return Some(Failure::new(
            "MemberMissing",
            format!("members not readable at the end: {}", missing.join(", ")),
        ));
    }
    let incomplete: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.as_ref().is_some_and(|v| v.has(cond::COMPLETE)))
        .map(|(m, _)| m.display())
        .collect();
    if !incomplete.is_empty() {
        return Some(Failure::new(
            "TeardownIncomplete",
            format!("members not Complete: {}", incomplete.join(", ")),
        ));
    }
    None
}

/// The Step Functions "Execution Status Change" event the abort step receives (the fields it uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatusChange {
    /// `detail-type`: `Step Functions Execution Status Change`, or a settle check
    /// ([`crate::scheduling::SETTLE_CHECK_DETAIL_TYPE`]) the retention sweep sends.
    #[serde(default, rename = "detail-type")]
    pub detail_type: Option<String>,
    /// `detail`.
    pub detail: ExecutionDetail,
}

impl ExecutionStatusChange {
    /// Whether this is a settle check of the retention sweep rather than Step Functions' event.
    pub fn is_settle_check(&self) -> bool {
        self.detail_type.as_deref() == Some(crate::scheduling::SETTLE_CHECK_DETAIL_TYPE)
    }
}

/// `detail` of an execution status change.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetail {
    /// Execution ARN.
    pub execution_arn: String,
    /// Its state machine.
    #[serde(default)]
    pub state_machine_arn: Option<String>,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    /// The execution input, as a JSON string.
    #[serde(default)]
    pub input: Option<String>,
    /// Error name, on FAILED.
    #[serde(default)]
    pub error: Option<String>,
    /// Cause, on FAILED.
    #[serde(default)]
    pub cause: Option<String>,
}

impl ExecutionDetail {
    /// The failure an ended execution gives its backup, restore or deletion: `ExecutionAborted`,
    /// `ExecutionTimedOut`, `ExecutionFailed`; `None` for any other status.
    pub fn failure_name(&self) -> Option<&'static str> {
        match self.status.as_str() {
            "ABORTED" => Some("ExecutionAborted"),
            "TIMED_OUT" => Some("ExecutionTimedOut"),
            "FAILED" => Some("ExecutionFailed"),
            _ => None,
        }
    }

    /// The execution input, parsed (`None` when absent or not JSON).
    pub fn input_value(&self) -> Option<Value> {
        self.input
            .as_deref()
            .and_then(|i| serde_json::from_str(i).ok())
    }

    /// `execution <arn> ended <status>[: <error>[: <cause>]]`.
    pub fn ended(&self) -> String {
        let arn = &self.execution_arn;
        match (self.error.as_deref(), self.cause.as_deref()) {
            (Some(e), Some(c)) => format!("execution {arn} ended {}: {e}: {c}", self.status),
            (Some(e), None) => format!("execution {arn} ended {}: {e}", self.status),
            _ => format!("execution {arn} ended {}", self.status),
        }
    }
}

/// What the abort step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortReport {
    /// `nothing-to-do`; `torn-down` (every member was asked, and the backup marked `Failed` by
    /// this invocation); `members-settled` or `members-running` (a backup that ended while its
    /// members still ran, looked at again).
    pub action: String,
    /// Why.
    pub detail: String,
    /// Teardown details, and the members that had not settled when it ended.
    #[serde(default)]
    pub teardown: Option<TeardownReport>,
}

impl AbortReport {
    /// What the invocation of a settle check returns: the report, also while a member has not
    /// settled (`members-running`) or a data plane still cannot be reached (`teardown-pending`,
    /// recorded in the document as on any delivery). The next sweep asks again; failing would
    /// only add Lambda's retries and a dead-letter message per sweep to the first delivery's.
    pub fn settle_check_result(
        result: Result<AbortReport, StepError>,
    ) -> Result<AbortReport, StepError> {
        match result {
            Err(StepError::DataPlaneUnreachable(m)) => Ok(AbortReport {
                action: "teardown-pending".into(),
                detail: m,
                teardown: None,
            }),
            other => other,
        }
    }

    /// What the invocation returns: `MembersRunning` while a member has not settled, so that
    /// Lambda's asynchronous retries look again (the handler sends its signals first).
    pub fn into_result(self) -> Result<Self, StepError> {
        match &self.teardown {
            Some(t) if !t.unsettled.is_empty() => Err(StepError::MembersRunning(format!(
                "{}; not settled: {}",
                self.detail,
                t.unsettled.join(", ")
            ))),
            _ => Ok(self),
        }
    }
}

/// Abort: an execution stopped, timed out or failed outside the workflow's own failure path. If
/// its backup is still running in the catalog, ask every member to tear down (GC resumed), then
/// mark it `Failed`. Harmless for executions that ended normally.
///
/// Nothing terminal is written before every member was asked: when a data plane cannot be
/// reached, the members it could not ask are recorded (`brfed.teardownPending`), the backup stays
/// as it is, and the step fails `DataPlaneUnreachable`, so that Lambda retries the event (and, once
/// its retries are spent, sends it to the dead-letter queue). Once every member was asked, it
/// watches them for up to the observe budget and records whether they all settled
/// (`brfed.membersSettled`); a backup that ended with members still running (here or in
/// `backup-finalize`) is looked at again by every later delivery, until they have.
pub async fn abort<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    event: ExecutionStatusChange,
) -> Result<AbortReport, StepError> {
    let d = event.detail;
    let nothing = |detail: String| AbortReport {
        action: "nothing-to-do".into(),
        detail,
        teardown: None,
    };
    let Some(failure_name) = d.failure_name() else {
        return Ok(nothing(format!("status {}", d.status)));
    };
    let Some(req) = d
        .input_value()
        .and_then(|v| BackupRequest::from_value(v).ok())
    else {
        return Ok(nothing("input is not a backup request".into()));
    };
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let Some((doc, _)) = env.catalog().get(&ns, &name).await? else {
        return Ok(nothing(format!("no catalog document for {ns}/{name}")));
    };
    if doc.brfed.execution != d.execution_arn {
        return Ok(nothing(format!(
            "{ns}/{name} belongs to {}",
            doc.brfed.execution
        )));
    }
    if doc.status.is_terminal() && doc.brfed.members_settled != Some(false) {
        return Ok(nothing(format!("{ns}/{name} already ended")));
    }
    let ctx = BackupContext {
        name: name.clone(),
        namespace: ns.clone(),
        execution: doc.brfed.execution.clone(),
        members: doc.brfed.members.clone(),
        options: doc.brfed.options.clone(),
        deadline: String::new(),
    };
    let cause = d.ended();
    let (report, deleted) = teardown_members(env.planes, &ctx.members, &ctx.execution).await;
    tracing::info!(requested = ?report.requested, already = ?report.already, deleted = ?report.deleted, unreachable = ?report.unreachable, "abort teardown");
    let at = now_ms();
    if !report.unreachable.is_empty() {
        let obs = observe_settling(env.planes, &ctx, Duration::ZERO).await;
        let pairs: Vec<(MemberRef, Option<MemberView>)> =
            ctx.members.iter().cloned().zip(views(&obs)).collect();
        env.catalog()
            .update(&ns, &name, |doc| {
                let before = doc.clone();
                doc.status.refresh_members(&pairs);
                doc.brfed
                    .teardown_requested_at
                    .get_or_insert_with(|| at.clone());
                doc.brfed.teardown_pending = report.unreachable.clone();
                record_deleted(&mut doc.status, &ctx.members, &report, &deleted, &at);
                *doc != before
            })
            .await?;
        return Err(StepError::DataPlaneUnreachable(format!(
            "{cause}; teardown of {ns}/{name} could not reach: {}; it is not marked Failed before every member was asked (retried)",
            report.unreachable.join("; ")
        )));
    }
    let obs = observe_settling(env.planes, &ctx, env.observe_budget).await;
    let unsettled = unsettled_members(&ctx.members, &obs, &ctx.execution);
    let pairs: Vec<(MemberRef, Option<MemberView>)> =
        ctx.members.iter().cloned().zip(views(&obs)).collect();
    let message = format!(
        "{cause}; teardown requested for {} member(s)",
        report.requested.len() + report.already.len()
    );
    let now = Utc::now();
    let mut detail = message.clone();
    let mut ended_now = false;
    env.catalog()
        .update(&ns, &name, |doc| {
            let before = doc.clone();
            ended_now = false;
            doc.status.refresh_members(&pairs);
            doc.brfed
                .teardown_requested_at
                .get_or_insert_with(|| at.clone());
            doc.brfed.teardown_pending.clear();
            doc.brfed.members_settled = Some(unsettled.is_empty());
            doc.brfed.unsettled_members = unsettled.clone();
            record_deleted(&mut doc.status, &ctx.members, &report, &deleted, &at);
            if !doc.status.is_terminal() {
                detail = format!("{message}{}", deleted_note(&doc.status));
                doc.status.finish(Some((failure_name, &detail)), now);
                ended_now = true;
            }
            *doc != before
        })
        .await?;
    let action = match (ended_now, unsettled.is_empty()) {
        (true, _) => "torn-down",
        (false, true) => "members-settled",
        (false, false) => "members-running",
    };
    if !ended_now {
        detail = format!("{ns}/{name} had ended with members not settled: {cause}");
    }
    Ok(AbortReport {
        action: action.into(),
        detail,
        teardown: Some(TeardownReport {
            unsettled,
            ..report
        }),
    })
}

#[cfg(test)]
#[path = "steps_tests.rs"]
mod tests;
