//! A corpus of malformed and hostile `VolumeBackup` inputs. Every one must be refused with a
//! named error whose message says what is wrong, must not panic, and, driven through the start
//! step, must be refused before anything is read or written: no member object in any data plane,
//! no call to the catalog at all.

use brfed_core::StepError;
use brfed_core::backup::spec::BackupRequest;
use brfed_core::backup::status::backup_key;
use brfed_core::backup::steps::{Env, StartInput, StartOutput, start};
use brfed_core::input::MAX_INPUT_BYTES;
use brfed_core::testing::{FakePlanes, FakeStore};
use futures::executor::block_on;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

const CATALOG: &str = "catalog";
const EXECUTION: &str = "arn:aws:states:us-west-2:123456789012:execution:volume-backup:bk";
const INVALID: &str = "InvalidSpec";
const UNKNOWN: &str = "UnknownCluster";

/// The good `VolumeBackup` every JSON case is a variation of, with small chainable edits.
#[derive(Clone)]
struct Doc(Value);

impl Doc {
    fn good() -> Self {
        Self(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1",
            "kind": "VolumeBackup",
            "metadata": {"name": "bk", "namespace": "br", "labels": {"team": "db"}},
            "spec": {
                "clusters": [
                    {"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"},
                    {"k8sClusterName": "dp2", "tcName": "basic", "tcNamespace": "tidb"},
                    {"k8sClusterName": "dp3", "tcName": "basic", "tcNamespace": "tidb"}
                ],
                "template": {
                    "s3": {"provider": "aws", "region": "us-west-2", "bucket": "brfed-data", "prefix": "prod"},
                    "br": {"sendCredToTikv": false},
                    "cleanPolicy": "Delete"
                }
            }
        }))
    }

    /// Sets the value at a JSON pointer whose parent exists (an object key or a list index).
    fn set(mut self, pointer: &str, value: Value) -> Self {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        match self.0.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.insert(key.to_string(), value);
            }
            Some(Value::Array(list)) => list[key.parse::<usize>().expect("an index")] = value,
            _ => panic!("no object or list at {parent}"),
        }
        self
    }

    /// Removes the value at a JSON pointer.
    fn remove(mut self, pointer: &str) -> Self {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let map = self
            .0
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("no object at {parent}"));
        map.remove(key);
        self
    }

    fn value(self) -> Value {
        self.0
    }
}

fn good() -> Doc {
    Doc::good()
}

fn cluster(k8s: &str) -> Value {
    json!({"k8sClusterName": k8s, "tcName": "basic", "tcNamespace": "tidb"})
}

/// `[[[ ... ]]]`, `depth` lists deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("junk"), |inner, _| json!([inner]))
}

enum Input {
    Json(Value),
    Yaml(String),
}

struct Case {
    name: String,
    input: Input,
    /// The expected `StepError::name()` from the start step.
    error: &'static str,
    /// A fragment the message must contain.
    says: String,
}

fn refused(name: &str, input: Value, says: &str) -> Case {
    Case {
        name: name.into(),
        input: Input::Json(input),
        error: INVALID,
        says: says.into(),
    }
}

fn unknown_cluster(name: &str, input: Value, says: &str) -> Case {
    Case {
        error: UNKNOWN,
        ..refused(name, input, says)
    }
}

fn yaml(name: &str, text: &str, says: &str) -> Case {
    Case {
        name: name.into(),
        input: Input::Yaml(text.into()),
        error: INVALID,
        says: says.into(),
    }
}

fn corpus() -> Vec<Case> {
    let s3 = "/spec/template/s3";
    let br = "/spec/template/br";
    let t = "/spec/template";
    let opts = "/options";
    let mut cases = vec![
        // The shape of the whole input.
        refused("an empty object", json!({}), "`spec` is missing"),
        refused(
            "a list at the top level",
            json!([good().value()]),
            "must be an object",
        ),
        refused("null as the input", Value::Null, "must be an object"),
        refused("a string as the input", json!("bk"), "must be an object"),
        refused("a number as the input", json!(42), "must be an object"),
        refused(
            "nulls everywhere at the top level",
            json!({"apiVersion": null, "kind": null, "metadata": null, "spec": null}),
            "apiVersion must be a string, not null",
        ),
        refused(
            "spec as null",
            good().set("/spec", Value::Null).value(),
            "spec must be an object, not null",
        ),
        refused(
            "an unknown top-level field",
            good().set("/spce", json!({})).value(),
            "unknown field `spce`",
        ),
        refused(
            "the data plane's kind",
            good().set("/kind", json!("Backup")).value(),
            "expected `VolumeBackup`",
        ),
        refused(
            "the kind in the wrong case",
            good().set("/kind", json!("volumebackup")).value(),
            "kind is `volumebackup`",
        ),
        refused(
            "the kind as a number",
            good().set("/kind", json!(1)).value(),
            "kind must be a string",
        ),
        refused(
            "another version of the federation API",
            good()
                .set("/apiVersion", json!("federation.pingcap.com/v1"))
                .value(),
            "apiVersion is `federation.pingcap.com/v1`",
        ),
        refused(
            "the data plane's apiVersion",
            good()
                .set("/apiVersion", json!("pingcap.com/v1alpha1"))
                .value(),
            "expected `federation.pingcap.com/v1alpha1`",
        ),
        refused(
            "skipGC as a string",
            good().set("/skipGC", json!("yes")).value(),
            "skipGC must be a boolean",
        ),
        refused(
            "a name beside metadata that differs from metadata.name",
            good().set("/name", json!("other")).value(),
            "differ",
        ),
        refused(
            "a namespace beside metadata that differs from metadata.namespace",
            good().set("/namespace", json!("other")).value(),
            "differ",
        ),
        refused(
            "an extra field beside volumeBackup",
            json!({"volumeBackup": good().value(), "dryRun": true}),
            "unknown field `dryRun` beside `volumeBackup`",
        ),
        refused(
            "volumeBackup holding a list",
            json!({"volumeBackup": ["federation.pingcap.com/v1alpha1", "VolumeBackup"]}),
            "must be an object",
        ),
        refused(
            "volumeBackup holding null",
            json!({"volumeBackup": null}),
            "must be an object",
        ),
        refused(
            "options both beside and inside volumeBackup",
            json!({"volumeBackup": good().set("/options", json!({"pollSeconds": 5})).value(),
                "options": {"pollSeconds": 10}}),
            "options",
        ),
        // metadata
        refused(
            "metadata as a string",
            good().set("/metadata", json!("bk")).value(),
            "metadata must be an object",
        ),
        refused(
            "metadata as a positional list",
            good().set("/metadata", json!(["bk", "br"])).value(),
            "metadata must be an object",
        ),
        refused(
            "metadata without a name",
            good().remove("/metadata/name").value(),
            "metadata.name is empty",
        ),
        refused(
            "generateName instead of a name",
            good()
                .remove("/metadata/name")
                .set("/metadata/generateName", json!("bk-"))
                .value(),
            "metadata.name is empty",
        ),
        refused(
            "the name as a number",
            good().set("/metadata/name", json!(2024)).value(),
            "metadata.name must be a string",
        ),
        refused(
            "the name as null",
            good().set("/metadata/name", Value::Null).value(),
            "metadata.name must be a string",
        ),
        refused(
            "a name so long the init Job name exceeds 63 characters",
            good().set("/metadata/name", json!("a".repeat(48))).value(),
            "too long",
        ),
        refused(
            "a name longer than any Kubernetes name",
            good().set("/metadata/name", json!("a".repeat(300))).value(),
            "is not a valid Kubernetes name",
        ),
        refused(
            "a name with a shell command",
            good().set("/metadata/name", json!("a;rm -rf /")).value(),
            "metadata.name `a;rm -rf /` is not a valid Kubernetes name",
        ),
        refused(
            "a name with a command substitution",
            good().set("/metadata/name", json!("$(x)")).value(),
            "is not a valid Kubernetes name",
        ),
        refused(
            "a name that climbs directories",
            good().set("/metadata/name", json!("../..")).value(),
            "is not a valid Kubernetes name",
        ),
        refused(
            "a name with a newline",
            good()
                .set("/metadata/name", json!("bk\nkind: Secret"))
                .value(),
            "metadata.name `bk?kind: Secret` is not a valid Kubernetes name",
        ),
        refused(
            "a name with non-ASCII letters",
            good().set("/metadata/name", json!("bäckup")).value(),
            "is not a valid Kubernetes name",
        ),
        refused(
            "a name with an emoji",
            good().set("/metadata/name", json!("bk-\u{1F680}")).value(),
            "is not a valid Kubernetes name",
        ),
        refused(
            "a name in uppercase",
            good().set("/metadata/name", json!("Daily")).value(),
            "is not a valid Kubernetes name",
        ),
        refused(
            "a name with a dot",
            good().set("/metadata/name", json!("daily.1")).value(),
            "must not contain '.'",
        ),
        refused(
            "a namespace in uppercase",
            good().set("/metadata/namespace", json!("Prod")).value(),
            "metadata.namespace `Prod` is not a valid namespace",
        ),
        refused(
            "a namespace with a space",
            good()
                .set("/metadata/namespace", json!("kube system"))
                .value(),
            "is not a valid namespace",
        ),
        refused(
            "a namespace with a dot",
            good().set("/metadata/namespace", json!("a.b")).value(),
            "is not a valid namespace",
        ),
        refused(
            "the namespace as a number",
            good().set("/metadata/namespace", json!(7)).value(),
            "metadata.namespace must be a string",
        ),
        refused(
            "labels as a list",
            good().set("/metadata/labels", json!(["team=db"])).value(),
            "metadata.labels must be an object",
        ),
        refused(
            "a label value as a number",
            good().set("/metadata/labels/team", json!(1)).value(),
            "metadata.labels.team must be a string",
        ),
        refused(
            "a label key with a space",
            good()
                .set("/metadata/labels", json!({"team name": "db"}))
                .value(),
            "`team name`",
        ),
        refused(
            "a label key with two slashes",
            good()
                .set("/metadata/labels", json!({"a/b/c": "db"}))
                .value(),
            "`a/b/c`",
        ),
        refused(
            "a label value with a shell command",
            good()
                .set("/metadata/labels/team", json!("db;reboot"))
                .value(),
            "`db;reboot`",
        ),
        refused(
            "a label value longer than 63 characters",
            good()
                .set("/metadata/labels/team", json!("d".repeat(64)))
                .value(),
            "metadata.labels.team",
        ),
        refused(
            "an annotation key that is not a qualified name",
            good()
                .set("/metadata/annotations", json!({"bad key!": "x"}))
                .value(),
            "`bad key!`",
        ),
        refused(
            "a label with an empty key",
            good().set("/metadata/labels", json!({"": "db"})).value(),
            "`` is not a valid label key",
        ),
        refused(
            "an annotation key whose prefix is not a DNS name",
            good()
                .set("/metadata/annotations", json!({"Foo_Bar/x": "y"}))
                .value(),
            "`Foo_Bar/x` is not a valid annotation key",
        ),
        refused(
            "an annotation value as an object",
            good()
                .set("/metadata/annotations", json!({"a": {"b": 1}}))
                .value(),
            "metadata.annotations.a must be a string",
        ),
        // spec
        refused(
            "spec as a positional list",
            good()
                .set(
                    "/spec",
                    json!([[cluster("dp1")], {"s3": {"provider": "aws", "bucket": "bkt"}}]),
                )
                .value(),
            "spec must be an object",
        ),
        refused(
            "an unknown field in spec",
            good().set("/spec/paused", json!(true)).value(),
            "unknown field `paused`",
        ),
        refused(
            "clusters as a string",
            good().set("/spec/clusters", json!("dp1,dp2")).value(),
            "spec.clusters must be a list",
        ),
        refused(
            "clusters as an object",
            good()
                .set("/spec/clusters", json!({"dp1": cluster("dp1")}))
                .value(),
            "spec.clusters must be a list",
        ),
        refused(
            "clusters as a number",
            good().set("/spec/clusters", json!(3)).value(),
            "spec.clusters must be a list",
        ),
        refused(
            "clusters as null",
            good().set("/spec/clusters", Value::Null).value(),
            "spec.clusters must be a list",
        ),
        refused(
            "no clusters",
            good().set("/spec/clusters", json!([])).value(),
            "spec.clusters is empty",
        ),
        refused(
            "the same data plane twice",
            good().set("/spec/clusters/2", cluster("dp1")).value(),
            "`dp1` appears twice",
        ),
        refused(
            "more than 100 clusters",
            good()
                .set(
                    "/spec/clusters",
                    (1..=101).map(|i| cluster(&format!("dp{i}"))).collect(),
                )
                .value(),
            "at most 100",
        ),
        refused(
            "a cluster entry as a positional list",
            good()
                .set("/spec/clusters/0", json!(["dp1", "basic", "tidb"]))
                .value(),
            "spec.clusters[0] must be an object",
        ),
        refused(
            "a cluster entry as a string",
            good().set("/spec/clusters/1", json!("dp2")).value(),
            "spec.clusters[1] must be an object",
        ),
        refused(
            "k8sClusterName as a number",
            good()
                .set("/spec/clusters/0/k8sClusterName", json!(1))
                .value(),
            "spec.clusters[0].k8sClusterName must be a string",
        ),
        refused(
            "tcName as null",
            good().set("/spec/clusters/2/tcName", Value::Null).value(),
            "spec.clusters[2].tcName must be a string",
        ),
        refused(
            "a cluster entry of nulls",
            good()
                .set(
                    "/spec/clusters/0",
                    json!({"k8sClusterName": null, "tcName": null, "tcNamespace": null}),
                )
                .value(),
            "spec.clusters[0].k8sClusterName must be a string, not null",
        ),
        refused(
            "an unknown field in a cluster entry",
            good()
                .set("/spec/clusters/0/tcNamesapce", json!("tidb"))
                .value(),
            "unknown field `tcNamesapce`",
        ),
        refused(
            "a cluster entry without its data plane",
            good().remove("/spec/clusters/1/k8sClusterName").value(),
            "spec.clusters[1].k8sClusterName is empty",
        ),
        refused(
            "a data plane name in uppercase",
            good()
                .set("/spec/clusters/0/k8sClusterName", json!("DP1"))
                .value(),
            "k8sClusterName `DP1` is not a valid name",
        ),
        refused(
            "a TidbCluster name with a shell command",
            good()
                .set("/spec/clusters/0/tcName", json!("basic;reboot"))
                .value(),
            "tcName `basic;reboot` is not a valid name",
        ),
        refused(
            "a TidbCluster namespace that climbs directories",
            good()
                .set("/spec/clusters/0/tcNamespace", json!("tidb/../kube-system"))
                .value(),
            "is not a valid namespace",
        ),
        unknown_cluster(
            "a data plane the registry does not know",
            good()
                .set("/spec/clusters/0/k8sClusterName", json!("dp4"))
                .value(),
            "`dp4` is not a known data plane",
        ),
        unknown_cluster(
            "one of three data planes unknown to the registry",
            good()
                .set("/spec/clusters/2/k8sClusterName", json!("dp-west"))
                .value(),
            "`dp-west` is not a known data plane (known: dp1, dp2, dp3)",
        ),
        // spec.template
        refused(
            "template as a list",
            good().set(t, json!([{"s3": {}}])).value(),
            "spec.template must be an object",
        ),
        refused(
            "template as null",
            good().set(t, Value::Null).value(),
            "spec.template must be an object",
        ),
        refused(
            "an unknown field in template",
            good()
                .set("/spec/template/schedule", json!("@daily"))
                .value(),
            "spec.template.schedule is not a field",
        ),
        refused(
            "no s3",
            good().remove(s3).value(),
            "spec.template.s3 is missing",
        ),
        refused(
            "s3 as a string",
            good().set(s3, json!("s3://bkt/prefix")).value(),
            "spec.template.s3 must be an object",
        ),
        refused(
            "s3 as null",
            good().set(s3, Value::Null).value(),
            "spec.template.s3 is missing",
        ),
        refused(
            "an unknown field in s3",
            good()
                .set("/spec/template/s3/bucketName", json!("x"))
                .value(),
            "spec.template.s3.bucketName is not a field",
        ),
        refused(
            "no bucket",
            good().remove("/spec/template/s3/bucket").value(),
            "spec.template.s3.bucket is missing",
        ),
        refused(
            "the bucket as a number",
            good().set("/spec/template/s3/bucket", json!(42)).value(),
            "spec.template.s3.bucket must be a string",
        ),
        refused(
            "no provider",
            good().remove("/spec/template/s3/provider").value(),
            "spec.template.s3.provider is missing",
        ),
        refused(
            "another provider than aws",
            good()
                .set("/spec/template/s3/provider", json!("ceph"))
                .value(),
            "need provider `aws`",
        ),
        refused(
            "the provider in uppercase",
            good()
                .set("/spec/template/s3/provider", json!("AWS"))
                .value(),
            "provider is `AWS`",
        ),
        refused(
            "a bucket name in uppercase",
            good()
                .set("/spec/template/s3/bucket", json!("Backups"))
                .value(),
            "bucket `Backups` is not a valid bucket name",
        ),
        refused(
            "a bucket name with an underscore",
            good()
                .set("/spec/template/s3/bucket", json!("my_bucket"))
                .value(),
            "is not a valid bucket name",
        ),
        refused(
            "a bucket name of two characters",
            good().set("/spec/template/s3/bucket", json!("ab")).value(),
            "is not a valid bucket name",
        ),
        refused(
            "a bucket name of 64 characters",
            good()
                .set("/spec/template/s3/bucket", json!("b".repeat(64)))
                .value(),
            "is not a valid bucket name",
        ),
        refused(
            "a bucket name with adjacent dots",
            good()
                .set("/spec/template/s3/bucket", json!("a..b"))
                .value(),
            "bucket `a..b` is not a valid bucket name",
        ),
        refused(
            "a bucket name that is an IP address",
            good()
                .set("/spec/template/s3/bucket", json!("192.168.0.1"))
                .value(),
            "bucket `192.168.0.1` is not a valid bucket name",
        ),
        refused(
            "a bucket name with a path in it",
            good()
                .set("/spec/template/s3/bucket", json!("bkt/../other"))
                .value(),
            "is not a valid bucket name",
        ),
        refused(
            "a prefix that climbs out with ..",
            good()
                .set("/spec/template/s3/prefix", json!("prod/../../other"))
                .value(),
            "without `..`",
        ),
        refused(
            "a prefix with a leading slash",
            good()
                .set("/spec/template/s3/prefix", json!("/prod"))
                .value(),
            "spec.template.s3.prefix must be a relative path",
        ),
        refused(
            "a prefix with a newline",
            good()
                .set("/spec/template/s3/prefix", json!("prod\nother"))
                .value(),
            "spec.template.s3.prefix",
        ),
        refused(
            "the prefix as a number",
            good().set("/spec/template/s3/prefix", json!(7)).value(),
            "spec.template.s3.prefix must be a relative path string",
        ),
        refused(
            "the region as a number",
            good().set("/spec/template/s3/region", json!(2)).value(),
            "spec.template.s3.region must be a string",
        ),
        refused(
            "forcePathStyle as a string",
            good()
                .set("/spec/template/s3/forcePathStyle", json!("true"))
                .value(),
            "spec.template.s3.forcePathStyle must be a boolean",
        ),
        refused(
            "s3 options as a string",
            good()
                .set("/spec/template/s3/options", json!("--s3.acl=private"))
                .value(),
            "spec.template.s3.options must be a list of strings",
        ),
        refused(
            "br as a string",
            good().set(br, json!("--concurrency=4")).value(),
            "spec.template.br must be an object",
        ),
        refused(
            "br naming the cluster brfed sets itself",
            good()
                .set("/spec/template/br/cluster", json!("basic"))
                .value(),
            "spec.template.br.cluster is not a field",
        ),
        refused(
            "a negative br concurrency",
            good()
                .set("/spec/template/br/concurrency", json!(-1))
                .value(),
            "br.concurrency must be a non-negative integer",
        ),
        refused(
            "a fractional br concurrency",
            good()
                .set("/spec/template/br/concurrency", json!(1.5))
                .value(),
            "br.concurrency must be a non-negative integer",
        ),
        refused(
            "br concurrency as a string",
            good()
                .set("/spec/template/br/concurrency", json!("4"))
                .value(),
            "br.concurrency must be a non-negative integer",
        ),
        refused(
            "br options that are not strings",
            good()
                .set("/spec/template/br/options", json!([1, 2]))
                .value(),
            "br.options must be a list of strings",
        ),
        refused(
            "br options as one string",
            good()
                .set("/spec/template/br/options", json!("--ratelimit=128"))
                .value(),
            "br.options must be a list of strings",
        ),
        refused(
            "sendCredToTikv as a string",
            good()
                .set("/spec/template/br/sendCredToTikv", json!("false"))
                .value(),
            "spec.template.br.sendCredToTikv must be a boolean",
        ),
        refused(
            "a cleanPolicy in the wrong case",
            good()
                .set("/spec/template/cleanPolicy", json!("delete"))
                .value(),
            "cleanPolicy \"delete\" is not one of Retain, OnFailure, Delete",
        ),
        refused(
            "cleanPolicy as null",
            good()
                .set("/spec/template/cleanPolicy", Value::Null)
                .value(),
            "cleanPolicy null is not one of",
        ),
        refused(
            "an unknown calcSizeLevel",
            good()
                .set("/spec/template/calcSizeLevel", json!("some"))
                .value(),
            "calcSizeLevel \"some\" is not one of all, full, incremental, none",
        ),
        refused(
            "an init Job deadline of zero",
            good()
                .set(
                    "/spec/template/volumeBackupInitJobMaxActiveSeconds",
                    json!(0),
                )
                .value(),
            "volumeBackupInitJobMaxActiveSeconds 0 must be an integer from 1 to 86400",
        ),
        refused(
            "a negative init Job deadline",
            good()
                .set(
                    "/spec/template/volumeBackupInitJobMaxActiveSeconds",
                    json!(-600),
                )
                .value(),
            "volumeBackupInitJobMaxActiveSeconds -600 must be",
        ),
        refused(
            "a huge init Job deadline",
            good()
                .set(
                    "/spec/template/volumeBackupInitJobMaxActiveSeconds",
                    json!(u64::MAX),
                )
                .value(),
            "must be an integer from 1 to 86400",
        ),
        refused(
            "an init Job deadline as a string",
            good()
                .set(
                    "/spec/template/volumeBackupInitJobMaxActiveSeconds",
                    json!("600"),
                )
                .value(),
            "volumeBackupInitJobMaxActiveSeconds \"600\" must be",
        ),
        refused(
            "a snapshotsDeleteRatio of zero",
            good()
                .set("/spec/template/snapshotsDeleteRatio", json!(0))
                .value(),
            "snapshotsDeleteRatio 0 must be a number from 0.1 to 2.0",
        ),
        refused(
            "a snapshotsDeleteRatio above 2",
            good()
                .set("/spec/template/snapshotsDeleteRatio", json!(2.5))
                .value(),
            "snapshotsDeleteRatio 2.5 must be",
        ),
        refused(
            "a snapshotsDeleteRatio as a string",
            good()
                .set("/spec/template/snapshotsDeleteRatio", json!("1.0"))
                .value(),
            "snapshotsDeleteRatio \"1.0\" must be",
        ),
        refused(
            "toolImage as a number",
            good().set("/spec/template/toolImage", json!(7)).value(),
            "spec.template.toolImage must be a string",
        ),
        refused(
            "env as an object",
            good()
                .set("/spec/template/env", json!({"AWS_REGION": "us-west-2"}))
                .value(),
            "spec.template.env must be a list",
        ),
        refused(
            "resources as a list",
            good().set("/spec/template/resources", json!([])).value(),
            "spec.template.resources must be an object",
        ),
        // options
        refused(
            "options as a string",
            good().set(opts, json!("fast")).value(),
            "options must be an object",
        ),
        refused(
            "an unknown option",
            good().set(opts, json!({"retries": 3})).value(),
            "unknown field `retries`",
        ),
        refused(
            "a poll interval of zero",
            good().set(opts, json!({"pollSeconds": 0})).value(),
            "options.pollSeconds must be between 1 and 3600",
        ),
        refused(
            "a poll interval above an hour",
            good().set(opts, json!({"pollSeconds": 3601})).value(),
            "options.pollSeconds must be between 1 and 3600",
        ),
        refused(
            "a negative poll interval",
            good().set(opts, json!({"pollSeconds": -5})).value(),
            "options.pollSeconds must be a whole number",
        ),
        refused(
            "a poll interval as a string",
            good().set(opts, json!({"pollSeconds": "30"})).value(),
            "options.pollSeconds must be a whole number",
        ),
        refused(
            "a deadline beyond the state machine's timeout",
            good().set(opts, json!({"deadlineSeconds": 82_801})).value(),
            "options.deadlineSeconds must be at most 82800",
        ),
        refused(
            "a deadline of zero",
            good().set(opts, json!({"deadlineSeconds": 0})).value(),
            "timeouts must be positive",
        ),
        refused(
            "a phase timeout of zero",
            good().set(opts, json!({"phaseTimeoutSeconds": 0})).value(),
            "timeouts must be positive",
        ),
        refused(
            "a phase timeout too large for a clock",
            good()
                .set(opts, json!({"phaseTimeoutSeconds": 1_u64 << 62}))
                .value(),
            "options.phaseTimeoutSeconds must be at most 82800",
        ),
        refused(
            "an unknown observe mode",
            good().set(opts, json!({"observeMode": "stream"})).value(),
            "unknown variant `stream`",
        ),
        refused(
            "an observe mode in the wrong case",
            good().set(opts, json!({"observeMode": "Watch"})).value(),
            "unknown variant `Watch`",
        ),
        // Size and depth.
        refused(
            "an input larger than 200 KiB",
            good()
                .set(
                    "/metadata/annotations",
                    json!({"note": "x".repeat(MAX_INPUT_BYTES)}),
                )
                .value(),
            "more than the 204800 accepted",
        ),
        refused(
            "deeply nested junk in an unknown template field",
            good().set("/spec/template/junk", nested(1000)).value(),
            "spec.template.junk is not a field",
        ),
        refused(
            "deeply nested junk as the clusters",
            good().set("/spec/clusters", nested(1000)).value(),
            "spec.clusters[0] must be an object",
        ),
        // YAML text, through `from_text`.
        yaml("empty text", "", "must be an object"),
        yaml("a YAML list", "- kind: VolumeBackup\n", "must be an object"),
        yaml("text that is not YAML", "{{{ nope", "not YAML or JSON"),
        yaml(
            "two YAML documents",
            "kind: VolumeBackup\n---\nkind: VolumeBackup\n",
            "not YAML or JSON",
        ),
        yaml(
            "a YAML mapping with a duplicate key",
            "metadata:\n  name: bk\n  name: other\nspec: {}\n",
            "duplicate",
        ),
        yaml(
            "a numeric name in YAML",
            "metadata: {name: 2024}\nspec: {clusters: []}\n",
            "metadata.name must be a string",
        ),
        yaml(
            "a YAML tag",
            "metadata: {name: !secret bk}\nspec: {}\n",
            "not YAML or JSON",
        ),
        yaml(
            "a YAML merge key in a cluster entry",
            "metadata: {name: bk}\nspec:\n  clusters:\n  - &b {k8sClusterName: dp1, tcName: basic, tcNamespace: tidb}\n  - {<<: *b, k8sClusterName: dp2}\n",
            "unknown field `<<`",
        ),
        yaml("a YAML alias bomb", &alias_bomb(), "not YAML or JSON"),
        yaml(
            "YAML nested 10000 lists deep",
            &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            "not YAML or JSON",
        ),
        yaml(
            "YAML text larger than 200 KiB",
            &format!("# {}\nkind: VolumeBackup\n", "x".repeat(MAX_INPUT_BYTES)),
            "more than the 204800 accepted",
        ),
    ];
    cases.push(yaml(
        "the original's YAML with a shell command for a name",
        &GOOD_YAML.replace("name: bk", "name: \"bk; rm -rf /\""),
        "metadata.name `bk; rm -rf /` is not a valid Kubernetes name",
    ));
    cases.push(yaml(
        "the original's YAML with cleanPolicy in lowercase",
        &GOOD_YAML.replace("cleanPolicy: Delete", "cleanPolicy: delete"),
        "cleanPolicy \"delete\" is not one of",
    ));
    cases
}

const GOOD_YAML: &str = "apiVersion: federation.pingcap.com/v1alpha1
kind: VolumeBackup
metadata:
  name: bk
  namespace: br
spec:
  clusters:
  - {k8sClusterName: dp1, tcName: basic, tcNamespace: tidb}
  - {k8sClusterName: dp2, tcName: basic, tcNamespace: tidb}
  template:
    s3: {provider: aws, region: us-west-2, bucket: brfed-data, prefix: prod}
    cleanPolicy: Delete
";

/// Nine levels of aliases, each repeating the one before nine times: 9^9 leaves once expanded.
fn alias_bomb() -> String {
    let mut text = String::from("a0: &a0 [\"lol\"]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    text
}

/// Runs the start step on three fresh data planes and an empty catalog.
fn run_start(input: Value) -> (Result<StartOutput, StepError>, FakePlanes, FakeStore) {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let env = Env {
        planes: &planes,
        store: &store,
        catalog_bucket: CATALOG,
        observe_budget: Duration::from_secs(1),
    };
    let out = block_on(start(
        &env,
        StartInput {
            input,
            execution: EXECUTION.into(),
        },
    ));
    (out, planes, store)
}

fn known() -> HashSet<String> {
    ["dp1", "dp2", "dp3"]
        .into_iter()
        .map(String::from)
        .collect()
}

/// Checks one refusal: the error name and a fragment of its message.
fn check_error(
    path: &str,
    got: Result<(), StepError>,
    error: &str,
    says: &str,
) -> Result<(), String> {
    match got {
        Ok(()) => Err(format!("{path}: accepted")),
        Err(e) if e.name() != error => Err(format!("{path}: {} instead of {error}: {e}", e.name())),
        Err(e) if !e.to_string().contains(says) => {
            Err(format!("{path}: message does not say `{says}`: {e}"))
        }
        Err(_) => Ok(()),
    }
}

/// Runs one case; `Err` says how it went wrong.
fn run(case: &Case) -> Result<(), String> {
    match &case.input {
        Input::Yaml(text) => check_error(
            "from_text",
            BackupRequest::from_text(text).and_then(|r| r.validate(Some(&known()))),
            INVALID,
            &case.says,
        ),
        Input::Json(value) => {
            // Parsing and validating alone never knows the registry's verdict, only the problem.
            check_error(
                "from_value",
                BackupRequest::from_value(value.clone()).and_then(|r| r.validate(Some(&known()))),
                INVALID,
                &case.says,
            )?;
            let (out, planes, store) = run_start(value.clone());
            check_error("start", out.map(|_| ()), case.error, &case.says)?;
            if planes.backup_count() != 0 || !planes.log.lock().unwrap().is_empty() {
                return Err(format!(
                    "start: touched a data plane: {:?}",
                    planes.log.lock().unwrap()
                ));
            }
            if store.calls() != 0 {
                return Err(format!("start: called the catalog {} times", store.calls()));
            }
            Ok(())
        }
    }
}

#[test]
fn every_bad_input_is_refused_with_a_named_error_that_says_why_before_any_side_effect() {
    let cases = corpus();
    assert!(cases.len() >= 35, "only {} cases", cases.len());
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        assert!(
            names.insert(case.name.as_str()),
            "case `{}` twice",
            case.name
        );
        let outcome = catch_unwind(AssertUnwindSafe(|| run(case)))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_good_input_the_corpus_varies_is_accepted_and_its_side_effects_are_seen() {
    let (out, planes, store) = run_start(Doc::good().value());
    let out = out.expect("the good input starts");
    assert_eq!(out.backup.members.len(), 3);
    assert_eq!(planes.backup_count(), 1, "the initialize member exists");
    assert!(store.calls() > 0);
    assert!(
        store.get(CATALOG, &backup_key("br", "bk")).is_some(),
        "the catalog document exists"
    );
    let from_yaml = BackupRequest::from_text(GOOD_YAML).expect("the good YAML parses");
    from_yaml.validate(Some(&known())).expect("and is valid");
}
