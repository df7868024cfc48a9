//! The deletion of a restore (`restore-delete`), on in-memory fakes: it deletes the member
//! `Restore`s that are the restore's and nothing else (no volume, PV or TidbCluster: the step has
//! no EC2 port, and the data planes' log shows every change it made), removes the record only
//! when none of its own remains, refuses a running or unknown restore, is idempotent, and lets
//! the name be restored again under the name's next execution name.

use brfed_core::backup::steps::StartInput;
use brfed_core::member::MemberRef;
use brfed_core::names::restore_execution_name;
use brfed_core::ports::{DataPlanes, MemberKind};
use brfed_core::restore::status::{
    RestoreGeneration, VolumeRestoreDoc, generation_key, restore_key,
};
use brfed_core::restore::steps;
use brfed_core::restore::steps::{RestoreDeleteInput, RestoreDeleteResult};
use brfed_core::testing::{FakeExecutions, RestoreFakes, restore_request};
use brfed_core::{StepError, names};
use chrono::Utc;
use serde_json::{Value, json};

const CATALOG: &str = "catalog";
const DATA: &str = "data";
const TARGET_NS: &str = "tidb-restore";
const PLANES: [&str; 3] = ["dp1", "dp2", "dp3"];
const STATE_MACHINE: &str = "arn:aws:states:us-west-2:123456789012:stateMachine:volume-restore";

fn exec(run: &str) -> String {
    names::execution_arn(STATE_MACHINE, run)
}

/// The data planes, the backup a restore starts from and EC2 ([`RestoreFakes`]), and Step
/// Functions.
struct World {
    fakes: RestoreFakes,
    sfn: FakeExecutions,
}

impl World {
    fn new() -> Self {
        Self {
            fakes: RestoreFakes::new(DATA, TARGET_NS, CATALOG),
            sfn: FakeExecutions::default(),
        }
    }

    /// Starts restore `name` by execution `run` (Step Functions says it runs).
    async fn start(&self, name: &str, run: &str) -> Result<(), StepError> {
        let input = StartInput {
            input: restore_request(name, DATA, TARGET_NS, false),
            execution: exec(run),
        };
        steps::start(&self.fakes.env(), input).await?;
        self.set_execution(run, "RUNNING");
        Ok(())
    }

    fn set_execution(&self, run: &str, status: &str) {
        self.sfn.runs.lock().unwrap().insert(
            (STATE_MACHINE.to_string(), run.to_string()),
            (json!({}), status.to_string()),
        );
    }

    /// Ends restore `name` (record `Complete`, its execution `SUCCEEDED`).
    fn complete(&self, name: &str, run: &str) {
        let key = restore_key("br", name);
        let mut doc: VolumeRestoreDoc =
            serde_json::from_value(self.fakes.store.get(CATALOG, &key).unwrap()).unwrap();
        doc.status.progress.end(None, Utc::now());
        self.fakes
            .store
            .put(CATALOG, &key, serde_json::to_value(&doc).unwrap());
        self.set_execution(run, "SUCCEEDED");
    }

    async fn delete(&self, name: &str) -> Result<RestoreDeleteResult, StepError> {
        let input = RestoreDeleteInput {
            name: name.into(),
            namespace: "br".into(),
        };
        steps::delete(&self.fakes.env().base, &self.sfn, input).await
    }

    fn record(&self, name: &str) -> Option<VolumeRestoreDoc> {
        self.fakes
            .store
            .get(CATALOG, &restore_key("br", name))
            .map(|v| serde_json::from_value(v).unwrap())
    }

    fn generation(&self, name: &str) -> Option<RestoreGeneration> {
        self.fakes
            .store
            .get(CATALOG, &generation_key("br", name))
            .map(|v| serde_json::from_value(v).unwrap())
    }

    fn member(&self, plane: &str, name: &str) -> Option<Value> {
        self.fakes
            .planes
            .restore(plane, TARGET_NS, &format!("fed-{name}"))
    }

    fn log(&self) -> Vec<String> {
        self.fakes.planes.log.lock().unwrap().clone()
    }
}

fn member_ref(plane: &str, name: &str) -> MemberRef {
    MemberRef {
        k8s_cluster_name: plane.into(),
        tc_name: "basic".into(),
        tc_namespace: TARGET_NS.into(),
        backup_name: format!("fed-{name}"),
    }
}

fn at(plane: &str, name: &str) -> String {
    format!("{plane}/{TARGET_NS}/fed-{name}")
}

#[tokio::test]
async fn a_deleted_restore_loses_its_members_and_record_and_nothing_else() {
    let w = World::new();
    w.start("r1", "br.r1").await.unwrap();
    w.complete("r1", "br.r1");
    let tidb_clusters: Vec<Value> = PLANES
        .iter()
        .map(|p| {
            futures::executor::block_on(w.fakes.planes.get_tidb_cluster(p, TARGET_NS, "basic"))
                .unwrap()
                .unwrap()
        })
        .collect();
    let before = w.log().len();

    let out = w.delete("r1").await.unwrap();
    assert_eq!(out.result, "Deleted");
    assert_eq!(out.execution, exec("br.r1"));
    assert_eq!(
        out.members_deleted,
        PLANES.map(|p| at(p, "r1")).to_vec(),
        "{out:?}"
    );
    assert!(out.foreign_members.is_empty() && out.members_gone.is_empty());
    assert_eq!(out.next_execution_name, "br.r1_2");
    for p in PLANES {
        assert_eq!(w.member(p, "r1"), None, "{p}");
    }
    assert!(w.record("r1").is_none(), "the record is gone");
    let g = w.generation("r1").expect("the name's generation");
    assert_eq!((g.next, g.deleted_execution.as_str()), (2, &*exec("br.r1")));
    // Only the member Restores were changed: no TidbCluster, and no EC2 call at all.
    let changes = &w.log()[before..];
    assert!(
        changes.iter().all(|l| l.starts_with("delete Restore ")),
        "{changes:?}"
    );
    assert_eq!(changes.len(), 3, "{changes:?}");
    for (p, tc) in PLANES.iter().zip(tidb_clusters) {
        let now = w
            .fakes
            .planes
            .get_tidb_cluster(p, TARGET_NS, "basic")
            .await
            .unwrap();
        assert_eq!(now, Some(tc), "{p}'s TidbCluster untouched");
    }
    assert!(w.fakes.ec2.volume_log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_member_restore_that_is_not_the_restores_is_left_and_named() {
    let w = World::new();
    w.start("r1", "br.r1").await.unwrap();
    w.complete("r1", "br.r1");
    // dp2's Restore of that name was replaced by someone else's.
    let m = member_ref("dp2", "r1");
    w.fakes
        .planes
        .delete_member(MemberKind::Restore, &m)
        .await
        .unwrap();
    let foreign = json!({"apiVersion": "pingcap.com/v1alpha1", "kind": "Restore",
        "metadata": {"name": "fed-r1", "namespace": TARGET_NS,
                     "annotations": {"brfed.io/execution": exec("other"), "brfed.io/federation-namespace": "br"}},
        "spec": {}});
    w.fakes
        .planes
        .create_member(MemberKind::Restore, "dp2", &foreign)
        .await
        .unwrap();

    let out = w.delete("r1").await.unwrap();
    assert_eq!(out.result, "Deleted", "no member of its own remains");
    assert_eq!(out.foreign_members, [at("dp2", "r1")]);
    assert_eq!(out.members_deleted, [at("dp1", "r1"), at("dp3", "r1")]);
    assert_eq!(w.member("dp2", "r1"), Some(foreign), "left as it was");
    assert!(w.record("r1").is_none());
}

#[tokio::test]
async fn a_running_restore_is_refused_and_nothing_is_deleted() {
    let w = World::new();
    w.start("r1", "br.r1").await.unwrap();
    let err = w.delete("r1").await.unwrap_err();
    assert_eq!(err.name(), "RestoreRunning", "{err}");
    assert!(err.to_string().contains("stop-execution"), "{err}");
    assert_eq!(w.fakes.planes.restore_count(), 3);
    assert!(w.record("r1").is_some());
    assert!(w.generation("r1").is_none());

    // Stopped before restore-abort marked its record: it has ended, it can go.
    w.set_execution("br.r1", "ABORTED");
    let out = w.delete("r1").await.unwrap();
    assert_eq!(out.result, "Deleted");
    assert_eq!(w.fakes.planes.restore_count(), 0);
}

#[tokio::test]
async fn an_unknown_restore_is_refused_by_name() {
    let w = World::new();
    let err = w.delete("nope").await.unwrap_err();
    assert_eq!(err.name(), "RestoreNotFound", "{err}");
    let env = w.fakes.env().base;
    let bad = RestoreDeleteInput {
        name: "Not_A_Name".into(),
        namespace: "br".into(),
    };
    let err = steps::delete(&env, &w.sfn, bad).await.unwrap_err();
    assert_eq!(err.name(), "InvalidSpec", "{err}");
    assert!(w.fakes.planes.log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_repeated_deletion_is_a_no_op_that_says_so() {
    let w = World::new();
    w.start("r1", "br.r1").await.unwrap();
    w.complete("r1", "br.r1");
    w.delete("r1").await.unwrap();
    let before = w.log().len();
    let again = w.delete("r1").await.unwrap();
    assert_eq!(again.result, "AlreadyDeleted");
    assert_eq!(again.execution, exec("br.r1"));
    assert_eq!(again.next_execution_name, "br.r1_2");
    assert_eq!(w.log().len(), before, "nothing touched");
    assert_eq!(w.generation("r1").unwrap().next, 2, "counted once");
}

#[tokio::test]
async fn a_data_plane_down_keeps_the_record_with_what_remains_until_a_new_try() {
    let w = World::new();
    w.start("r1", "br.r1").await.unwrap();
    w.complete("r1", "br.r1");
    w.fakes.planes.set_down("dp3", true);
    let err = w.delete("r1").await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable", "{err}");
    assert!(err.to_string().contains(&at("dp3", "r1")), "{err}");
    let doc = w.record("r1").expect("the record stays");
    let d = doc.brfed.deletion.expect("what the deletion left");
    assert_eq!(d.error, "DataPlaneUnreachable");
    assert_eq!(d.remaining_members.len(), 1, "{d:?}");
    assert!(d.remaining_members[0].starts_with(&at("dp3", "r1")));
    assert!(w.generation("r1").is_none(), "the name is not freed yet");
    assert!(w.member("dp3", "r1").is_some());

    w.fakes.planes.set_down("dp3", false);
    let out = w.delete("r1").await.unwrap();
    assert_eq!(out.result, "Deleted");
    assert_eq!(out.members_deleted, [at("dp3", "r1")]);
    assert_eq!(out.members_gone, [at("dp1", "r1"), at("dp2", "r1")]);
    assert!(w.record("r1").is_none());
}

#[tokio::test]
async fn a_deleted_restores_name_is_restored_again_under_its_next_execution_name() {
    let w = World::new();
    w.start("r1", "br.r1").await.unwrap();
    w.complete("r1", "br.r1");
    let first = w.delete("r1").await.unwrap();
    let second_run = first.next_execution_name.clone();
    assert_eq!(second_run, restore_execution_name("br", "r1", 2));
    let next = RestoreGeneration::next_execution_name(&w.fakes.store, CATALOG, "br", "r1")
        .await
        .unwrap();
    assert_eq!(next, second_run, "what `brfed restore create` names it");

    w.start("r1", &second_run).await.unwrap();
    assert_eq!(w.record("r1").unwrap().brfed.execution, exec(&second_run));
    assert_eq!(
        w.fakes.planes.restore_count(),
        3,
        "its members are made again"
    );
    // a repeated start of the same execution is the same restore
    w.start("r1", &second_run).await.unwrap();
    assert_eq!(w.fakes.planes.restore_count(), 3);

    w.complete("r1", &second_run);
    let out = w.delete("r1").await.unwrap();
    assert_eq!(out.execution, exec(&second_run));
    assert_eq!(out.next_execution_name, "br.r1_3");
}

#[tokio::test]
async fn a_start_that_meets_the_record_of_a_restore_being_deleted_is_retried() {
    let w = World::new();
    w.start("r1", "br.r1").await.unwrap();
    w.complete("r1", "br.r1");
    // the deletion has raised the generation and not removed the record yet
    w.fakes.store.put(
        CATALOG,
        &generation_key("br", "r1"),
        json!({"next": 2, "deletedExecution": exec("br.r1"), "deletedAt": "0"}),
    );
    let err = w.start("r1", "br.r1_2").await.unwrap_err();
    assert_eq!(err.name(), "CatalogConflict", "retryable: {err}");
    assert!(err.is_retryable());
    // an unrelated restore of the name is a plain RestoreExists
    w.fakes.store.remove(CATALOG, &generation_key("br", "r1"));
    let err = w.start("r1", "br.r1_2").await.unwrap_err();
    assert_eq!(err.name(), "RestoreExists", "{err}");
}
