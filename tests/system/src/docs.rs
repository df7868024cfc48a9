//! Builders of the JSON documents the system tests, the bench and the fault matrix write: the
//! `volume-backup` / `volume-restore` execution inputs ([`VolumeBackup`], [`VolumeRestore`]) and
//! the member objects the federation creates in a data plane ([`BackupMember`],
//! [`RestoreMember`]). One builder type, [`Doc`]: the setters every kind has are written once,
//! each kind has its own starts.

use kube::api::DynamicObject;
use serde_json::{Value, json};
use std::marker::PhantomData;

/// `apiVersion` of the federation's kinds.
const API_VERSION: &str = "federation.pingcap.com/v1alpha1";

/// Builder of a document of kind `K`.
#[derive(Debug, Clone)]
pub struct Doc<K> {
    doc: Value,
    kind: PhantomData<K>,
}

/// Kind marker: a `VolumeBackup` (execution input).
#[derive(Debug, Clone)]
pub struct Backup;

/// Kind marker: a `VolumeRestore` (execution input).
#[derive(Debug, Clone)]
pub struct Restore;

/// Kind marker: a member `Backup` (volume-snapshot).
#[derive(Debug, Clone)]
pub struct MemberBackup;

/// Kind marker: a member `Restore` (volume-snapshot).
#[derive(Debug, Clone)]
pub struct MemberRestore;

/// Builder of a `volume-backup` execution input (a `VolumeBackup`).
pub type VolumeBackup = Doc<Backup>;

/// Builder of a `volume-restore` execution input (a `VolumeRestore` from a catalog backup).
pub type VolumeRestore = Doc<Restore>;

/// Builder of a member `Backup` (volume-snapshot), as the federation creates it.
pub type BackupMember = Doc<MemberBackup>;

/// Builder of a member `Restore` (volume-snapshot), as the federation creates it.
pub type RestoreMember = Doc<MemberRestore>;

impl<K> Doc<K> {
    fn of(doc: Value) -> Self {
        Self {
            doc,
            kind: PhantomData,
        }
    }

    /// `metadata.namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.doc["metadata"]["namespace"] = json!(namespace);
        self
    }

    /// `metadata.annotations`.
    pub fn annotations(mut self, annotations: Value) -> Self {
        self.doc["metadata"]["annotations"] = annotations;
        self
    }

    /// One annotation (e.g. `sim.brfed.dev/fault`).
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.doc["metadata"]["annotations"][key] = json!(value);
        self
    }

    /// `metadata.labels`.
    pub fn labels(mut self, labels: Value) -> Self {
        self.doc["metadata"]["labels"] = labels;
        self
    }

    /// `options` (brfed's: `observeMode`, `phaseTimeoutSeconds`, ...).
    pub fn options(mut self, options: Value) -> Self {
        self.doc["options"] = options;
        self
    }

    /// The document.
    pub fn build(self) -> Value {
        self.doc
    }

    /// Its `spec` alone (a schedule's `backupTemplate`).
    pub fn spec(mut self) -> Value {
        self.doc["spec"].take()
    }

    /// The document as a kube object (a member to create).
    pub fn object(self) -> DynamicObject {
        serde_json::from_value(self.doc).expect("a kube object")
    }
}

impl Doc<Backup> {
    /// The smallest input: `name` in namespace `br` over `clusters`, stored under
    /// `s3://bucket/prefix`; no `apiVersion`/`kind`, nothing else in the template.
    pub fn new(name: &str, clusters: Vec<Value>, bucket: &str, prefix: &str) -> Self {
        Self::of(json!({"metadata": {"name": name, "namespace": "br"},
            "spec": {"clusters": clusters, "template": {
                "s3": {"provider": "aws", "bucket": bucket, "prefix": prefix}}}}))
    }

    /// The input as a user writes the object: [`Self::new`] with `apiVersion` and `kind`, and a
    /// template with `br.sendCredToTikv: false`, the S3 region `us-west-2`, tool image
    /// `pingcap/br:v7.5.1` and `cleanPolicy`.
    pub fn written(
        name: &str,
        clusters: Vec<Value>,
        bucket: &str,
        prefix: &str,
        clean_policy: &str,
    ) -> Self {
        let mut b = Self::new(name, clusters, bucket, prefix)
            .template("br", json!({"sendCredToTikv": false}))
            .template("toolImage", json!("pingcap/br:v7.5.1"))
            .template("cleanPolicy", json!(clean_policy));
        b.doc["apiVersion"] = json!(API_VERSION);
        b.doc["kind"] = json!("VolumeBackup");
        b.doc["spec"]["template"]["s3"]["region"] = json!("us-west-2");
        b
    }

    /// Sets `spec.template.{key}`.
    pub fn template(mut self, key: &str, value: Value) -> Self {
        self.doc["spec"]["template"][key] = value;
        self
    }
}

impl Doc<Restore> {
    /// `name` in `namespace` over `clusters`, from backup `namespace/backup` of the catalog
    /// (`fromBackup`), with an empty template.
    pub fn from_backup(name: &str, namespace: &str, clusters: Vec<Value>, backup: &str) -> Self {
        Self::of(json!({"apiVersion": API_VERSION, "kind": "VolumeRestore",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusters": clusters, "template": {}},
            "fromBackup": {"namespace": namespace, "name": backup}}))
    }

    /// `spec.template` (`warmup`, `warmupStrategy`, ...).
    pub fn template(mut self, template: Value) -> Self {
        self.doc["spec"]["template"] = template;
        self
    }
}

/// What a member of either kind has: `kind` `name` in `ns` for TidbCluster `tc` (same
/// namespace), `{mode}: volume-snapshot`, a full backup's data under `s3://bucket/prefix`.
fn member(kind: &str, mode: &str, (name, ns, tc): (&str, &str, &str), s3: (&str, &str)) -> Value {
    let (bucket, prefix) = s3;
    let mut m = json!({
        "apiVersion": "pingcap.com/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "backupType": "full",
            "br": {"cluster": tc, "clusterNamespace": ns},
            "s3": {"provider": "aws", "bucket": bucket, "prefix": prefix, "region": "us-west-2"},
            "toolImage": "pingcap/br:v7.5.1",
        },
    });
    m["spec"][mode] = json!("volume-snapshot");
    m
}

impl Doc<MemberBackup> {
    /// A member `name` in `ns` for TidbCluster `tc` (same namespace), storing under `s3://bucket/prefix`.
    pub fn new(name: &str, ns: &str, tc: &str, bucket: &str, prefix: &str, phase: &str) -> Self {
        let mut m = member("Backup", "backupMode", (name, ns, tc), (bucket, prefix));
        m["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "system-test"});
        m["spec"]["federalVolumeBackupPhase"] = json!(phase);
        m["spec"]["cleanPolicy"] = json!("Retain");
        m["spec"]["calcSizeLevel"] = json!("all");
        Self::of(m)
    }

    /// `volumeBackupInitJobMaxActiveSeconds` (initialize member).
    pub fn init_deadline(mut self, seconds: u64) -> Self {
        self.doc["spec"]["volumeBackupInitJobMaxActiveSeconds"] = json!(seconds);
        self
    }

    /// `cleanPolicy` and `cleanOption.snapshotsDeleteRatio`.
    pub fn clean_policy(mut self, policy: &str, ratio: f64) -> Self {
        self.doc["spec"]["cleanPolicy"] = json!(policy);
        self.doc["spec"]["cleanOption"] = json!({"snapshotsDeleteRatio": ratio});
        self
    }
}

impl Doc<MemberRestore> {
    /// A member `name` in `ns` for TidbCluster `tc`, restoring from `s3://bucket/prefix` into `az`.
    pub fn new(name: &str, ns: &str, tc: &str, bucket: &str, prefix: &str, az: &str) -> Self {
        let mut m = member("Restore", "restoreMode", (name, ns, tc), (bucket, prefix));
        m["spec"]["federalVolumeRestorePhase"] = json!("restore-volume");
        m["spec"]["volumeAZ"] = json!(az);
        Self::of(m)
    }

    /// `warmup` and `warmupStrategy`.
    pub fn warmup(mut self, mode: &str, strategy: &str) -> Self {
        self.doc["spec"]["warmup"] = json!(mode);
        self.doc["spec"]["warmupStrategy"] = json!(strategy);
        self
    }
}
