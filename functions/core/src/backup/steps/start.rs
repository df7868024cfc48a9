//! Step `backup-start`: the preflight (every problem at once, before any side effect), the catalog
//! record, and the initialize member.

use crate::backup::member::member_of;

use crate::backup::member::build_member_backup;
use crate::backup::spec::BackupRequest;
use crate::backup::status::VolumeBackupDoc;
use crate::backup::status::vbk;
use crate::backup::steps::context::BackupContext;
use crate::backup::steps::context::Env;
use crate::backup::steps::context::StartInput;
use crate::backup::steps::context::StartOutput;
use crate::backup::steps::execute::ensure_member;
use crate::error::StepError;
use crate::execution::NothingMore;
use crate::member::MemberRef;
use crate::member::MemberView;
use crate::member::phase;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::time::Phase;
use crate::time::rfc3339;
use chrono::Utc;
use futures::future::join_all;
use serde_json::Value;

/// Start: validate, check every data plane and prefix (reporting every problem at once), record
/// the backup in the catalog, and create the initialize member in `clusters[0]`.
pub async fn start<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: StartInput,
) -> Result<StartOutput, StepError> {
    let req = BackupRequest::from_value(input.input)?;
    req.validate(None)?;
    if let Some(locations) = env.backup_locations {
        locations.check_backup(&req)?;
    }
    for warning in req.warnings() {
        tracing::warn!(%warning, "the request is run as the original runs it");
    }
    if let Err(StepError::InvalidSpec(m)) = req.validate(Some(&env.planes.cluster_names())) {
        return Err(StepError::UnknownCluster(m));
    }
    let execution = input.execution;
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let members = req.members();

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
    doc.status
        .progress
        .set_condition(vbk::RUNNING, None, None, now);
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
            extra: NothingMore::default(),
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
            // these messages start with the data plane's name already
            StepError::DataPlaneUnreachable(m) | StepError::DataPlaneForbidden(m) => m.clone(),
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
    /// plane (retryable), an unknown one, an existing backup, a member name conflict, a data
    /// plane's refusal (no rights there, then a CRD missing), a TidbCluster (or other data-plane)
    /// problem, the catalog failing, a used S3 prefix — with
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
        type Named = fn(String) -> StepError;
        let first_kinds: [(&str, Named); 6] = [
            ("DataPlaneUnreachable", StepError::DataPlaneUnreachable),
            ("UnknownCluster", StepError::UnknownCluster),
            ("BackupExists", StepError::BackupExists),
            ("MemberNameConflict", StepError::MemberNameConflict),
            ("DataPlaneForbidden", StepError::DataPlaneForbidden),
            ("DataPlaneRejected", StepError::DataPlaneRejected),
        ];
        for (name, error) in first_kinds {
            if let Some(m) = joined(name) {
                return Err(error(m));
            }
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
        if let Err(e) = env
            .planes
            .probe(MemberKind::Backup, &m.k8s_cluster_name, &m.tc_namespace)
            .await
        {
            let mut problem = Problem::answered(e);
            // `answered` keeps the whole error where its message does not name the plane
            if problem.summary == problem.error.to_string() {
                problem.summary = format!("{}: {}", m.k8s_cluster_name, problem.summary);
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
    // Outside the stack's locations S3 would only deny the prefix checks: say why once.
    if let Some(Err(e)) = env.backup_locations.map(|l| l.check_backup(req)) {
        report.problems.push(Problem::found(e));
        return report;
    }
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
        doc.status.progress.phase.as_deref().unwrap_or("unknown")
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
