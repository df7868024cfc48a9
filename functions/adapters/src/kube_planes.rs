//! [`DataPlanes`] on Kubernetes: one kube client per kubeconfig context (context name =
//! `k8sClusterName`, as in the original), built once per process and reused across invocations.
//! `kube::Error`s are classified here into brfed's error names. Each call to one data plane runs in
//! a `data_plane` span with its `cluster` (kube's own log lines inside it carry it too), and every
//! error is logged once, with `cluster`, where it is classified.

use brfed_core::StepError;
use brfed_core::member::MemberRef;
use brfed_core::ports::{Created, DataPlanes, MemberKind, Observation};
use futures::{StreamExt, future::join_all, stream::select_all};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("pingcap.com", "v1alpha1", kind),
        plural,
    )
}

/// The data planes of one kubeconfig.
#[derive(Clone)]
pub struct KubeRegistry {
    clients: BTreeMap<String, Client>,
    /// Clients without a read timeout, for watches (the server ends them at `timeoutSeconds`).
    watch_clients: BTreeMap<String, Client>,
    backups: ApiResource,
    restores: ApiResource,
    tidb_clusters: ApiResource,
}

/// Parses a kubeconfig. The error says where and what kind of problem, never the file's text
/// (a kubeconfig holds credentials, and errors reach logs).
pub fn parse_kubeconfig(text: &str) -> Result<Kubeconfig, StepError> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    serde_saphyr::from_str_with_options::<Kubeconfig>(text, options).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        StepError::Configuration(format!(
            "the kubeconfig is not a valid kubeconfig{at} (the parser's message is withheld: \
             it may quote the file, which holds credentials)"
        ))
    })
}

impl KubeRegistry {
    /// Builds one client per context of `kubeconfig` (YAML text). A context whose user runs
    /// `aws eks get-token` gets EKS tokens signed in-process with `aws`'s credentials instead
    /// (see [`crate::eks_token`]).
    pub async fn from_yaml(
        kubeconfig: &str,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, StepError> {
        let kc = parse_kubeconfig(kubeconfig)?;
        let mut clients = BTreeMap::new();
        let mut watch_clients = BTreeMap::new();
        for ctx in &kc.contexts {
            let opts = KubeConfigOptions {
                context: Some(ctx.name.clone()),
                ..Default::default()
            };
            let mut config = Config::from_custom_kubeconfig(kc.clone(), &opts)
                .await
                .map_err(|e| {
                    StepError::Configuration(format!("kubeconfig context {}: {e}", ctx.name))
                })?;
            let eks = crate::eks_token::replace_aws_exec(&mut config, aws)
                .await
                .map_err(|e| {
                    StepError::Configuration(format!("kubeconfig context {}: {e}", ctx.name))
                })?;
            config.connect_timeout = Some(Duration::from_secs(5));
            let mut watch_config = config.clone();
            watch_config.read_timeout = None;
            config.read_timeout = Some(Duration::from_secs(30));
            let build = |c: Config| {
                crate::eks_token::client(c, eks.as_ref())
                    .map_err(|e| StepError::Configuration(format!("client for {}: {e}", ctx.name)))
            };
            clients.insert(ctx.name.clone(), build(config)?);
            watch_clients.insert(ctx.name.clone(), build(watch_config)?);
        }
        if clients.is_empty() {
            return Err(StepError::Configuration(
                "the kubeconfig has no contexts".into(),
            ));
        }
        Ok(Self {
            clients,
            watch_clients,
            backups: resource("Backup", "backups"),
            restores: resource("Restore", "restores"),
            tidb_clusters: resource("TidbCluster", "tidbclusters"),
        })
    }

    fn client(&self, cluster: &str) -> Result<&Client, StepError> {
        self.clients
            .get(cluster)
            .ok_or_else(|| StepError::UnknownCluster(format!("no kubeconfig context `{cluster}`")))
    }

    fn resource(&self, kind: MemberKind) -> &ApiResource {
        match kind {
            MemberKind::Backup => &self.backups,
            MemberKind::Restore => &self.restores,
        }
    }

    fn members(
        &self,
        kind: MemberKind,
        cluster: &str,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, StepError> {
        Ok(Api::namespaced_with(
            self.client(cluster)?.clone(),
            namespace,
            self.resource(kind),
        ))
    }

    async fn read(&self, kind: MemberKind, m: &MemberRef) -> Observation {
        match self.get_member(kind, m).await {
            Ok(Some(v)) => Observation::Present(v),
            Ok(None) => Observation::Absent,
            Err(e) => Observation::Unreachable(e.to_string()),
        }
    }
}

/// A 404 that is not about an object but about the resource itself: the API server does not
/// serve it (yet). A restarted API server answers so until its CRDs are served again: a Status
/// "the server could not find the requested resource" without details, or a plain-text
/// "404 page not found" (kube-rs makes it a Status without details). A missing object's 404 is a
/// Status naming it (`details.name`).
fn resource_not_served(status: &kube::core::Status) -> bool {
    status.code == 404 && status.details.as_ref().is_none_or(|d| d.name.is_empty())
}

/// `get`, with `None` only for an object that does not exist (`get_opt` also turns "the server
/// could not find the requested resource" into `None`, which would make a member of a restarting
/// data plane look deleted).
async fn get_object(
    api: &Api<DynamicObject>,
    name: &str,
) -> Result<Option<DynamicObject>, kube::Error> {
    match api.get(name).await {
        Ok(o) => Ok(Some(o)),
        Err(kube::Error::Api(s)) if s.code == 404 && !resource_not_served(&s) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Classifies a kube error: connection problems, 5xx, 429 and a resource not served (yet) are
/// retryable (`DataPlaneUnreachable`), 401/403 are `DataPlaneForbidden` (brfed's rights there),
/// other API refusals are `DataPlaneRejected`.
pub fn classify(cluster: &str, what: &str, e: kube::Error) -> StepError {
    tracing::warn!(cluster, what, error = %e, "data plane call failed");
    match &e {
        kube::Error::Api(status) if resource_not_served(status) => {
            StepError::DataPlaneUnreachable(format!(
                "{cluster}: {what}: the API server does not serve the resource (starting, or its CRD is missing): {}",
                status.message
            ))
        }
        kube::Error::Api(status) if status.code == 404 => {
            StepError::MemberMissing(format!("{cluster}: {what}: not found ({})", status.message))
        }
        kube::Error::Api(status) if status.code == 429 || status.code >= 500 => {
            StepError::DataPlaneUnreachable(format!(
                "{cluster}: {what}: {} {}",
                status.code, status.message
            ))
        }
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
            StepError::DataPlaneForbidden(format!(
                "{cluster}: {what}: {} {}: brfed's rights in a data plane are \
                 infra/dataplane/brfed-rbac.yaml, bound in each TiDB namespace it serves \
                 (docs/deploy.md, \"Data-plane access\")",
                status.code, status.message
            ))
        }
        kube::Error::Api(status) => StepError::DataPlaneRejected(format!(
            "{cluster}: {what}: {} {}",
            status.code, status.message
        )),
        _ => StepError::DataPlaneUnreachable(format!("{cluster}: {what}: {e}")),
    }
}

/// The API server refused a change under a UID precondition (409): member `m`'s name now holds
/// another object than the one of UID `uid`.
fn replaced(m: &MemberRef, uid: &str, message: &str) -> StepError {
    StepError::MemberReplaced(format!(
        "{}: the object of this name is no longer the one of UID {uid} ({message})",
        m.display()
    ))
}

fn to_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

impl KubeRegistry {
    /// JSON merge-patch of member `m` (`patch` is the whole object's patch). With `uid`, only
    /// while the object is still the one of that UID: a `metadata.uid` in the patch is a
    /// precondition, and the API server refuses (409) to patch another object of the name
    /// (`MemberReplaced`).
    async fn merge_patch(
        &self,
        kind: MemberKind,
        m: &MemberRef,
        uid: Option<&str>,
        patch: &Value,
    ) -> Result<(), StepError> {
        let guarded;
        let patch = match uid {
            Some(uid) => {
                let mut p = patch.clone();
                p["metadata"]["uid"] = Value::String(uid.to_string());
                guarded = p;
                &guarded
            }
            None => patch,
        };
        let api = self.members(kind, &m.k8s_cluster_name, &m.tc_namespace)?;
        let result = api
            .patch(
                &m.backup_name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await;
        match (result, uid) {
            (Ok(_), _) => Ok(()),
            (Err(kube::Error::Api(s)), Some(uid)) if s.code == 409 => {
                Err(replaced(m, uid, &s.message))
            }
            (Err(e), _) => Err(classify(&m.k8s_cluster_name, "patch", e)),
        }
    }
}

impl DataPlanes for KubeRegistry {
    fn cluster_names(&self) -> HashSet<String> {
        self.clients.keys().cloned().collect()
    }

    #[tracing::instrument(name = "data_plane", skip_all, fields(cluster = %cluster))]
    async fn probe(
        &self,
        kind: MemberKind,
        cluster: &str,
        namespace: &str,
    ) -> Result<(), StepError> {
        match self
            .members(kind, cluster, namespace)?
            .list_metadata(&kube::api::ListParams::default().limit(1))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                Err(StepError::DataPlaneRejected(format!(
                    "{cluster}: the {} CRD ({}.pingcap.com) is not installed",
                    kind.kind(),
                    kind.plural()
                )))
            }
            Err(e) => Err(classify(
                cluster,
                &format!("list {} in namespace {namespace}", kind.plural()),
                e,
            )),
        }
    }

    #[tracing::instrument(name = "data_plane", skip_all, fields(cluster = %cluster))]
    async fn get_tidb_cluster(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, StepError> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client(cluster)?.clone(),
            namespace,
            &self.tidb_clusters,
        );
        get_object(&api, name)
            .await
            .map(|o| o.as_ref().map(to_value))
            .map_err(|e| classify(cluster, "get TidbCluster", e))
    }

    #[tracing::instrument(name = "data_plane", skip_all, fields(cluster = %m.k8s_cluster_name))]
    async fn get_member(
        &self,
        kind: MemberKind,
        m: &MemberRef,
    ) -> Result<Option<Value>, StepError> {
        get_object(
            &self.members(kind, &m.k8s_cluster_name, &m.tc_namespace)?,
            &m.backup_name,
        )
        .await
        .map(|o| o.as_ref().map(to_value))
        .map_err(|e| classify(&m.k8s_cluster_name, kind.kind(), e))
    }

    #[tracing::instrument(name = "data_plane", skip_all, fields(cluster = %cluster))]
    async fn create_member(
        &self,
        kind: MemberKind,
        cluster: &str,
        object: &Value,
    ) -> Result<Created, StepError> {
        let obj: DynamicObject = serde_json::from_value(object.clone())
            .map_err(|e| StepError::Internal(e.to_string()))?;
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        let name = obj.metadata.name.clone().unwrap_or_default();
        let api = self.members(kind, cluster, &ns)?;
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => Ok(Created::Created),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = get_object(&api, &name)
                    .await
                    .map_err(|e| classify(cluster, kind.kind(), e))?;
                match existing {
                    Some(o) => Ok(Created::AlreadyExists(to_value(&o))),
                    None => Err(StepError::DataPlaneUnreachable(format!(
                        "{cluster}: {} {ns}/{name} conflicted and vanished",
                        kind.kind()
                    ))),
                }
            }
            Err(e) => Err(classify(cluster, "create", e)),
        }
    }

    #[tracing::instrument(name = "data_plane", skip_all, fields(cluster = %m.k8s_cluster_name))]
    async fn patch_member_spec(
        &self,
        kind: MemberKind,
        m: &MemberRef,
        spec: &Value,
    ) -> Result<(), StepError> {
        self.merge_patch(kind, m, None, &serde_json::json!({ "spec": spec }))
            .await
    }

    #[tracing::instrument(name = "data_plane", skip_all, fields(cluster = %m.k8s_cluster_name))]
    async fn delete_member(&self, kind: MemberKind, m: &MemberRef) -> Result<bool, StepError> {
        let api = self.members(kind, &m.k8s_cluster_name, &m.tc_namespace)?;
        match api
            .delete(&m.backup_name, &kube::api::DeleteParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(classify(&m.k8s_cluster_name, "delete", e)),
        }
    }

    #[tracing::instrument(name = "data_plane", skip_all, fields(cluster = %m.k8s_cluster_name))]
    async fn patch_member_if(
        &self,
        kind: MemberKind,
        m: &MemberRef,
        uid: &str,
        patch: &Value,
    ) -> Result<(), StepError> {
        self.merge_patch(kind, m, Some(uid), patch).await
    }

    #[tracing::instrument(name = "data_plane", skip_all, fields(cluster = %m.k8s_cluster_name))]
    async fn delete_member_if(
        &self,
        kind: MemberKind,
        m: &MemberRef,
        uid: &str,
    ) -> Result<bool, StepError> {
        let api = self.members(kind, &m.k8s_cluster_name, &m.tc_namespace)?;
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&m.backup_name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 && !resource_not_served(&s) => Ok(false),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(replaced(m, uid, &s.message)),
            Err(e) => Err(classify(&m.k8s_cluster_name, "delete", e)),
        }
    }

    async fn observe_members(
        &self,
        kind: MemberKind,
        members: &[MemberRef],
        budget: Duration,
        done: &(dyn Fn(&[Observation]) -> bool + Send + Sync),
    ) -> Vec<Observation> {
        let mut obs: Vec<Observation> = join_all(members.iter().map(|m| self.read(kind, m))).await;
        if budget.is_zero() || done(&obs) {
            return obs;
        }
        let deadline = Instant::now() + budget;
        let mut streams = Vec::new();
        for (i, m) in members.iter().enumerate() {
            // a client without read timeout: the server itself ends the watch at `timeoutSeconds`
            let Some(client) = self.watch_clients.get(&m.k8s_cluster_name) else {
                continue;
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &m.tc_namespace, self.resource(kind));
            let server_timeout = (budget.as_secs() + 5).min(290) as u32;
            let cfg = watcher::Config::default()
                .fields(&format!("metadata.name={}", m.backup_name))
                .timeout(server_timeout);
            streams.push(
                watcher(api, cfg)
                    .default_backoff()
                    .map(move |e| (i, e))
                    .boxed(),
            );
        }
        let mut merged = select_all(streams);
        let mut seen = vec![false; members.len()];
        while let Ok(Some((i, event))) = tokio::time::timeout_at(deadline, merged.next()).await {
            match event {
                Ok(watcher::Event::Init) => seen[i] = false,
                Ok(watcher::Event::InitApply(o)) | Ok(watcher::Event::Apply(o)) => {
                    seen[i] = true;
                    obs[i] = Observation::Present(to_value(&o));
                }
                Ok(watcher::Event::InitDone) => {
                    if !seen[i] {
                        obs[i] = Observation::Absent;
                    }
                }
                Ok(watcher::Event::Delete(_)) => obs[i] = Observation::Absent,
                Err(e) => {
                    let m = &members[i];
                    tracing::warn!(
                        cluster = %m.k8s_cluster_name,
                        member = %m.backup_name,
                        error = %e,
                        "watch failed"
                    );
                    obs[i] = Observation::Unreachable(format!(
                        "{}: watch: {e}",
                        members[i].k8s_cluster_name
                    ))
                }
            }
            if done(&obs) {
                break;
            }
        }
        obs
    }
}

#[cfg(test)]
mod not_served_tests {
    use super::*;
    use kube::core::Status;

    /// As the API server sends it.
    fn status(v: serde_json::Value) -> Status {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_missing_object_is_absent_but_a_resource_not_served_is_unreachable() {
        let missing = status(serde_json::json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "message": "backups.pingcap.com \"fed-a\" not found",
            "reason": "NotFound", "details": {"name": "fed-a", "group": "pingcap.com", "kind": "backups"},
            "code": 404}));
        assert!(!resource_not_served(&missing));
        let restarting = status(serde_json::json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "message": "the server could not find the requested resource",
            "reason": "NotFound", "details": {}, "code": 404}));
        assert!(resource_not_served(&restarting));
        // what the local API server answers for a resource it does not serve, as kube-rs reads it
        let plain =
            Status::failure("404 page not found", "Failed to parse error data").with_code(404);
        assert!(resource_not_served(&plain));
        let e = classify("dp2", "create", kube::Error::Api(plain.boxed()));
        assert_eq!(e.name(), "DataPlaneUnreachable", "{e}");
        let e = classify("dp2", "get Backup", kube::Error::Api(restarting.boxed()));
        assert_eq!(e.name(), "DataPlaneUnreachable", "{e}");
        let e = classify("dp2", "get Backup", kube::Error::Api(missing.boxed()));
        assert_eq!(e.name(), "MemberMissing", "{e}");
    }

    #[test]
    fn a_refusal_of_brfed_s_rights_is_forbidden_naming_what_and_where_and_the_shipped_file() {
        let forbidden = status(serde_json::json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": "backups.pingcap.com is forbidden: User \"brfed-functions\" cannot list resource \"backups\" in API group \"pingcap.com\" in the namespace \"tidb\"",
            "details": {"group": "pingcap.com", "kind": "backups"}}));
        let e = classify(
            "dp1",
            "list backups in namespace tidb",
            kube::Error::Api(forbidden.boxed()),
        );
        assert_eq!(e.name(), "DataPlaneForbidden", "{e}");
        assert!(!e.is_retryable());
        let m = e.to_string();
        for part in [
            "dp1",
            "cannot list resource \"backups\"",
            "namespace \"tidb\"",
            "brfed-rbac.yaml",
        ] {
            assert!(m.contains(part), "{part} in {m}");
        }
    }
}
