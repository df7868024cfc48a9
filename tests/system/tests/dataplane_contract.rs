//! The data-plane contract, driven by hand: these tests play the federation themselves, writing the
//! data-plane `Backup`/`Restore` objects directly with kube (no brfed code), and check what the
//! simulated TiDB Operator does against the real apiservers and the AWS emulator of the world.
//!
//! They need the world: `KUBECONFIG`, `AWS_ENDPOINT_URL`, the simulated operator on `SIM_HTTP_ADDR`.
//! Each test uses its own namespace and TiDB cluster key, so they run in parallel.

use std::collections::{BTreeMap, BTreeSet};

use brfed_sim_operator::seed::{
    SeededPlane, TidbClusterSeed, seed_restore_target, seed_tidb_cluster,
};
use brfed_system_tests::dataplane::{
    BackupMember, PhaseLog, RestoreMember, WAIT, World, condition, condition_types, create, has,
    patch_spec, pd_events, reason, status_str, unique, wait_condition, wait_for, wait_gone,
    wait_has,
};
use kube::api::{DeleteParams, DynamicObject};
use serde_json::{Value, json};

const FAULT: &str = "sim.brfed.dev/fault";
const TC: &str = "basic";
const STORES: usize = 2;
const GIB: u64 = 1 << 30;

/// One federated backup played by hand.
struct Backup<'a> {
    world: &'a World,
    ns: String,
    name: String,
    planes: Vec<String>,
    prefix: String,
}

impl<'a> Backup<'a> {
    /// Backup members `name` in `ns` of `planes`, each storing under `{ns}/{word}-{plane}`.
    fn of(world: &'a World, ns: &str, name: &str, planes: &[String], word: &str) -> Self {
        Self {
            world,
            ns: ns.to_string(),
            name: name.to_string(),
            planes: planes.to_vec(),
            prefix: format!("{ns}/{word}"),
        }
    }

    fn member_prefix(&self, plane: &str) -> String {
        format!("{}-{plane}", self.prefix)
    }

    fn member(&self, plane: &str, phase: &str) -> BackupMember {
        BackupMember::new(
            &self.name,
            &self.ns,
            TC,
            &self.world.bucket,
            &self.member_prefix(plane),
            phase,
        )
    }

    /// A member `Restore` `name` in `target_ns` of `plane`, restoring `plane`'s member into `az`.
    fn restore_member(&self, name: &str, target_ns: &str, plane: &str, az: &str) -> RestoreMember {
        RestoreMember::new(
            name,
            target_ns,
            TC,
            &self.world.bucket,
            &self.member_prefix(plane),
            az,
        )
    }

    fn api(&self, plane: &str) -> kube::Api<kube::api::DynamicObject> {
        self.world.backups(plane, &self.ns)
    }

    /// initialize on the first plane, then execute everywhere, until all snapshots are created.
    async fn start(&self, customize: impl Fn(BackupMember) -> BackupMember) {
        let init = &self.planes[0];
        create(
            &self.api(init),
            &customize(self.member(init, "initialize").init_deadline(600)).object(),
        )
        .await;
        wait_condition(&self.api(init), &self.name, "VolumeBackupInitialized").await;
        patch_spec(
            &self.api(init),
            &self.name,
            json!({"federalVolumeBackupPhase": "execute"}),
        )
        .await;
        for plane in &self.planes[1..] {
            create(
                &self.api(plane),
                &customize(self.member(plane, "execute")).object(),
            )
            .await;
        }
    }

    /// The happy remainder: resume once all snapshots exist, wait for completion, tear down.
    async fn finish(&self) -> BTreeMap<String, kube::api::DynamicObject> {
        for plane in &self.planes {
            wait_condition(&self.api(plane), &self.name, "VolumeBackupSnapshotsCreated").await;
        }
        let init = &self.planes[0];
        patch_spec(
            &self.api(init),
            &self.name,
            json!({"resumeGcSchedule": true}),
        )
        .await;
        wait_condition(
            &self.api(init),
            &self.name,
            "VolumeBackupInitializeComplete",
        )
        .await;
        for plane in &self.planes {
            wait_condition(&self.api(plane), &self.name, "VolumeBackupComplete").await;
        }
        for plane in &self.planes {
            patch_spec(
                &self.api(plane),
                &self.name,
                json!({"federalVolumeBackupPhase": "teardown"}),
            )
            .await;
        }
        let mut done = BTreeMap::new();
        for plane in &self.planes {
            done.insert(
                plane.clone(),
                wait_condition(&self.api(plane), &self.name, "Complete").await,
            );
        }
        done
    }

    /// The snapshots listed in the `backupmeta` of `plane`'s member.
    async fn snapshot_ids(&self, plane: &str) -> Vec<String> {
        let meta = self.object("backupmeta", plane).await.expect("backupmeta");
        volume_fields(&meta, "snapshot_id")
    }

    /// How many of `ids` the emulator's EC2 describes.
    async fn snapshots_found(&self, ids: &[String]) -> usize {
        self.world
            .cloud
            .snapshots_by_id(ids)
            .await
            .expect("DescribeSnapshots")
            .len()
    }

    /// Deletes `plane`'s member (its finalizer, if any, runs the clean) and waits until it is gone.
    async fn delete(&self, plane: &str) {
        self.api(plane)
            .delete(&self.name, &DeleteParams::default())
            .await
            .expect("delete member");
        wait_gone(&self.api(plane), &self.name).await;
    }

    /// The S3 keys under `plane`'s member prefix.
    async fn objects(&self, plane: &str) -> Vec<String> {
        self.world
            .cloud
            .list(
                &self.world.bucket,
                &format!("{}/", self.member_prefix(plane)),
            )
            .await
            .expect("S3 list")
    }

    async fn object(&self, key: &str, plane: &str) -> Option<Value> {
        let bytes = self
            .world
            .cloud
            .get(
                &self.world.bucket,
                &format!("{}/{key}", self.member_prefix(plane)),
            )
            .await
            .expect("S3 get")?;
        Some(
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{key} of {plane} is not JSON: {e}")),
        )
    }
}

/// The world, its first `n` data planes, and TidbCluster `basic` seeded in them (`STORES` TiKV
/// per plane, then `customize`) in namespace `unique(prefix)`, which is also its cluster key.
async fn seeded(
    prefix: &str,
    n: usize,
    customize: impl Fn(TidbClusterSeed) -> TidbClusterSeed,
) -> (World, Vec<String>, String, Vec<SeededPlane>) {
    let world = World::from_env().await;
    let planes = world.plane_names(n);
    let ns = unique(prefix);
    let s = customize(TidbClusterSeed::new(&ns, TC, &ns).stores_per_plane(STORES));
    let seeded = seed_tidb_cluster(&world.kubeconfig, &planes, &s)
        .await
        .expect("seed the TiDB cluster");
    (world, planes, ns, seeded)
}

/// `field` of every volume of every TiKV store of a `backupmeta` or `restoremeta`.
fn volume_fields(meta: &Value, field: &str) -> Vec<String> {
    meta["tikv"]["stores"]
        .as_array()
        .expect("stores")
        .iter()
        .flat_map(|s| s["volumes"].as_array().cloned().unwrap_or_default())
        .map(|v| v[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `pauseCount`, `resumeCount` and `expireCount` of a simulated PD.
fn pd_counts(pd: &Value) -> (Option<u64>, Option<u64>, Option<u64>) {
    (
        pd["pauseCount"].as_u64(),
        pd["resumeCount"].as_u64(),
        pd["expireCount"].as_u64(),
    )
}

/// Condition `ty` of the object, asserted to be there with a message that mentions `part`.
fn condition_saying(obj: &DynamicObject, ty: &str, part: &str) -> Value {
    let c = condition(obj, ty).unwrap_or_else(|| panic!("no {ty} condition"));
    assert!(
        c["message"].as_str().is_some_and(|m| m.contains(part)),
        "{c}"
    );
    c
}

/// TidbCluster `basic` of namespace `ns` in `plane`.
async fn tidb_cluster(world: &World, plane: &str, ns: &str) -> DynamicObject {
    world
        .tidbclusters(plane, ns)
        .get(TC)
        .await
        .unwrap_or_else(|e| panic!("TidbCluster {ns}/{TC} of {plane}: {e}"))
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_walks_initialize_execute_resume_teardown_and_restores_back() {
    let (world, planes, ns, seeded) = seeded("dpc-happy", 3, |s| s).await;
    let key = ns.clone();
    let bk = Backup::of(&world, &ns, "fed-bk", &planes, "happy");
    let mut logs = BTreeMap::new();
    for plane in &planes {
        logs.insert(
            plane.clone(),
            PhaseLog::start(bk.api(plane), &bk.name).await,
        );
    }

    bk.start(|m| m).await;
    let pd_while_paused = world
        .pd(&key)
        .await
        .expect("the PD of the cluster exists once initialized");
    assert_eq!(
        pd_while_paused["paused"], true,
        "GC/schedulers are paused after VolumeBackupInitialized: {pd_while_paused}"
    );
    let done = bk.finish().await;

    // conditions, in the order they were first written, and the phase walk
    let init = &planes[0];
    let init_types = condition_types(&done[init]);
    assert_eq!(
        init_types[..5],
        [
            "Scheduled",
            "Running",
            "VolumeBackupInitialized",
            "Prepare",
            "VolumeBackupSnapshotsCreated"
        ],
        "init member conditions: {init_types:?}"
    );
    assert_eq!(init_types.last().map(String::as_str), Some("Complete"));
    let mut tail: Vec<&str> = init_types[5..init_types.len() - 1]
        .iter()
        .map(String::as_str)
        .collect();
    tail.sort_unstable();
    assert_eq!(
        tail,
        ["VolumeBackupComplete", "VolumeBackupInitializeComplete"],
        "init member conditions: {init_types:?}"
    );
    logs[init]
        .assert_walk(
            &[
                "Scheduled",
                "Running",
                "VolumeBackupInitialized",
                "Scheduled",
                "Prepare",
                "Running",
                "VolumeBackupSnapshotsCreated",
                "Complete",
            ],
            &format!("{init} backup"),
        )
        .await;
    for plane in &planes[1..] {
        assert_eq!(
            condition_types(&done[plane]),
            [
                "Scheduled",
                "Prepare",
                "Running",
                "VolumeBackupSnapshotsCreated",
                "VolumeBackupComplete",
                "Complete"
            ],
            "{plane} conditions"
        );
        logs[plane]
            .assert_walk(
                &[
                    "Scheduled",
                    "Prepare",
                    "Running",
                    "VolumeBackupSnapshotsCreated",
                    "VolumeBackupComplete",
                    "Complete",
                ],
                &format!("{plane} backup"),
            )
            .await;
    }
    for obj in done.values() {
        for c in condition_types(obj) {
            let c = condition(obj, &c).expect("condition");
            assert_eq!(c["status"], "True");
            assert!(
                c["lastTransitionTime"]
                    .as_str()
                    .is_some_and(|t| t.ends_with('Z')),
                "{c}"
            );
        }
        assert_eq!(status_str(obj, "phase"), "Complete");
    }

    // status fields and S3 metadata, per member
    let mut commit_tss = BTreeSet::new();
    let mut snapshots_by_plane = BTreeMap::new();
    for (plane, seeded_plane) in planes.iter().zip(&seeded) {
        let obj = &done[plane];
        let commit_ts: u64 = status_str(obj, "commitTs")
            .parse()
            .expect("commitTs is a TSO");
        commit_tss.insert(commit_ts);
        assert_eq!(
            status_str(obj, "backupPath"),
            format!("s3://{}/{}", world.bucket, bk.member_prefix(plane))
        );
        assert_eq!(
            obj.data
                .pointer("/status/backupSize")
                .and_then(Value::as_u64),
            Some(STORES as u64 * 10 * GIB)
        );

        let cluster = bk
            .object("clustermeta", plane)
            .await
            .expect("clustermeta exists");
        assert_eq!(
            sorted_keys(&cluster),
            ["kubernetes", "options", "pd", "tidb", "tikv"]
        );
        let meta = bk
            .object("backupmeta", plane)
            .await
            .expect("backupmeta exists");
        assert_eq!(
            sorted_keys(&meta),
            [
                "cluster_info",
                "kubernetes",
                "options",
                "pd",
                "region",
                "tidb",
                "tikv"
            ]
        );
        assert_eq!(
            sorted_keys(&meta["cluster_info"]),
            [
                "cluster_version",
                "full_backup_type",
                "replicas",
                "resolved_ts"
            ]
        );
        assert_eq!(meta["cluster_info"]["full_backup_type"], "aws-ebs");
        assert_eq!(meta["cluster_info"]["cluster_version"], "v7.5.1");
        assert_eq!(
            meta["cluster_info"]["resolved_ts"].as_u64(),
            Some(commit_ts),
            "commitTs = backupmeta resolved_ts"
        );
        assert_eq!(
            meta["tikv"]["replicas"].as_u64(),
            Some((STORES * planes.len()) as u64),
            "whole-cluster store count"
        );
        assert_eq!(
            sorted_keys(&meta["kubernetes"]),
            ["crd_tidb_cluster", "options", "pvcs", "pvs"]
        );
        assert_eq!(
            meta["kubernetes"]["crd_tidb_cluster"]["metadata"]["name"],
            TC
        );
        assert_eq!(meta["region"], world.cloud.region);
        let mut volume_ids = Vec::new();
        let mut snaps = Vec::new();
        for store in meta["tikv"]["stores"].as_array().expect("stores") {
            assert!(
                seeded_plane
                    .store_ids
                    .contains(&store["store_id"].as_u64().expect("store_id"))
            );
            for v in store["volumes"].as_array().expect("volumes") {
                assert_eq!(
                    sorted_keys(v),
                    [
                        "restore_volume_id",
                        "snapshot_id",
                        "status",
                        "type",
                        "volume_az",
                        "volume_id"
                    ]
                );
                assert_eq!(v["type"], "storage.data-dir");
                assert_eq!(v["volume_az"], seeded_plane.az.as_str());
                volume_ids.push(v["volume_id"].as_str().expect("volume_id").to_string());
                snaps.push(v["snapshot_id"].as_str().expect("snapshot_id").to_string());
            }
        }
        let mut seeded_ids = seeded_plane.volume_ids.clone();
        seeded_ids.sort();
        volume_ids.sort();
        assert_eq!(
            volume_ids, seeded_ids,
            "{plane}: snapshots of this plane's TiKV volumes"
        );
        let manifest = format!(
            "{}/manifests/{ns}/TidbCluster/{TC}.yaml",
            bk.member_prefix(plane)
        );
        assert!(
            world
                .cloud
                .exists(&world.bucket, &manifest)
                .await
                .expect("S3 head"),
            "{manifest} exists"
        );

        // real snapshots in the emulator, from the right volumes, tagged as BR tags them (only
        // `TiDBCluster-BR=old`; the volumes' own tags are not copied) plus the simulator's own
        let found = world
            .cloud
            .snapshots_by_id(&snaps)
            .await
            .expect("DescribeSnapshots");
        assert_eq!(found.len(), snaps.len());
        for s in &found {
            assert!(seeded_plane.volume_ids.contains(&s.volume_id));
            assert_eq!(s.tags.get("sim.brfed.dev/tidb-cluster"), Some(&key));
            assert_eq!(
                s.tags.get("TiDBCluster-BR").map(String::as_str),
                Some("old")
            );
            assert!(
                s.tags
                    .keys()
                    .all(|k| k == "TiDBCluster-BR" || k.starts_with("sim.brfed.dev/")),
                "{:?}",
                s.tags
            );
        }
        snapshots_by_plane.insert(plane.clone(), snaps);
    }
    assert_eq!(
        commit_tss.len(),
        planes.len(),
        "every member read its own resolved ts: {commit_tss:?}"
    );

    // exactly one pause and one resume, nothing left paused
    let pd = world.pd(&key).await.expect("PD");
    assert_eq!(pd["paused"], false, "{pd}");
    assert_eq!(pd_counts(&pd), (Some(1), Some(1), Some(0)), "{pd}");
    let holder = format!("{init}/{ns}/{}", bk.name);
    assert_eq!(pd_events(&pd, "pause")[0]["by"], holder.as_str());
    assert_eq!(pd_events(&pd, "resume")[0]["by"], holder.as_str());
    assert!(pd_events(&pd, "pause")[0]["at"].as_str() < pd_events(&pd, "resume")[0]["at"].as_str());

    // ---- restore into new TidbClusters in recovery mode
    let ns2 = unique("dpc-restore");
    let key2 = ns2.clone();
    seed_restore_target(
        &world.kubeconfig,
        &planes,
        &TidbClusterSeed::new(&ns2, TC, &key2).stores_per_plane(STORES),
    )
    .await
    .expect("seed restore targets");
    let rt = "fed-rt";
    // a different AZ than the source for each plane proves volumeAZ is honoured
    let target_az: BTreeMap<String, String> = planes
        .iter()
        .zip(&seeded)
        .map(|(p, s)| {
            let next = match s.az.chars().last() {
                Some('a') => 'b',
                Some('b') => 'c',
                _ => 'a',
            };
            (p.clone(), format!("{}{next}", &s.az[..s.az.len() - 1]))
        })
        .collect();
    let restores = |plane: &str| world.restores(plane, &ns2);
    let mut rlogs = BTreeMap::new();
    for plane in &planes {
        rlogs.insert(plane.clone(), PhaseLog::start(restores(plane), rt).await);
        let member = bk
            .restore_member(rt, &ns2, plane, &target_az[plane])
            .warmup("sync", "hybrid");
        create(&restores(plane), &member.object()).await;
    }
    let mut commit_by_plane = BTreeMap::new();
    for plane in &planes {
        let obj = wait_condition(&restores(plane), rt, "TikvComplete").await;
        let ts: u64 = status_str(&obj, "commitTs")
            .parse()
            .expect("restore commitTs");
        assert_eq!(
            ts.to_string(),
            status_str(&done[plane], "commitTs"),
            "{plane}: restore commitTs = the backup's resolved ts"
        );
        commit_by_plane.insert(plane.clone(), ts);
        let tc = tidb_cluster(&world, plane, &ns2).await;
        assert_eq!(
            tc.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("tidb.pingcap.com/tikv-volumes-ready"))
                .map(String::as_str),
            Some(format!("{ns2}/{rt}").as_str())
        );
    }
    let (chosen, min_ts) = commit_by_plane
        .iter()
        .min_by_key(|(_, ts)| **ts)
        .map(|(p, t)| (p.clone(), *t))
        .expect("members");
    patch_spec(
        &restores(&chosen),
        rt,
        json!({"federalVolumeRestorePhase": "restore-data"}),
    )
    .await;
    wait_condition(&restores(&chosen), rt, "DataComplete").await;
    for plane in &planes {
        patch_spec(
            &restores(plane),
            rt,
            json!({"federalVolumeRestorePhase": "restore-finish"}),
        )
        .await;
    }
    for plane in &planes {
        let obj = wait_condition(&restores(plane), rt, "Complete").await;
        let mut expected = vec![
            "Scheduled",
            "Running",
            "VolumeComplete",
            "WarmUpStarted",
            "WarmUpComplete",
            "TikvComplete",
        ];
        if *plane == chosen {
            expected.push("DataComplete");
        }
        expected.push("Complete");
        assert_eq!(
            condition_types(&obj),
            expected,
            "{plane} restore conditions"
        );
        rlogs[plane]
            .assert_walk(&expected, &format!("{plane} restore"))
            .await;

        // real volumes from this plane's snapshots, in the requested AZ, tagged as BR and then
        // the operator (CONFORMANCE R3) tag them
        let snaps = &snapshots_by_plane[plane];
        let mut restored = Vec::new();
        let mut pvcs = BTreeSet::new();
        for snap in snaps {
            let vols = world
                .cloud
                .volumes_from_snapshot(snap)
                .await
                .expect("DescribeVolumes");
            assert_eq!(vols.len(), 1, "one volume restored from {snap}");
            let v = &vols[0];
            assert_eq!(v.snapshot_id.as_deref(), Some(snap.as_str()));
            assert_eq!(v.az, target_az[plane]);
            let tag = |k: &str| v.tags.get(k).map(String::as_str);
            // BR
            assert_eq!(tag("snapshot/createdFromSnapshotId"), Some(snap.as_str()));
            assert_eq!(tag("TiDBCluster-BR"), Some("new"));
            assert_eq!(tag("ebs.csi.aws.com/cluster"), Some("true"));
            // the operator: the restored PV and its PVC in the target namespace; the target
            // namespace differs from the backup's, so the PV has a new name
            let pv = tag("kubernetes.io/created-for/pv/name").expect("pv/name tag");
            assert!(pv.starts_with("pvc-"), "{pv}");
            assert_eq!(tag("CSIVolumeName"), Some(pv));
            assert_ne!(
                tag("snapshot/kubernetes.io/created-for/pv/name"),
                Some(pv),
                "not the backed-up volume's PV"
            );
            assert_eq!(
                tag("kubernetes.io/created-for/pvc/namespace"),
                Some(ns2.as_str())
            );
            pvcs.insert(
                tag("kubernetes.io/created-for/pvc/name")
                    .expect("pvc/name tag")
                    .to_string(),
            );
            restored.push(v.id.clone());
        }
        let want: BTreeSet<String> = (0..STORES).map(|i| format!("tikv-{TC}-tikv-{i}")).collect();
        assert_eq!(pvcs, want, "{plane}: the PVCs {{volume}}-{{tc}}-tikv-N");
        let restoremeta = world
            .cloud
            .get(
                &world.bucket,
                &format!("{}/restoremeta", bk.member_prefix(plane)),
            )
            .await
            .expect("S3 get")
            .expect("restoremeta exists");
        let restoremeta: Value = serde_json::from_slice(&restoremeta).expect("restoremeta JSON");
        let mut listed: Vec<String> = volume_fields(&restoremeta, "restore_volume_id");
        listed.sort();
        restored.sort();
        assert_eq!(
            listed, restored,
            "{plane}: restoremeta lists the restored volumes"
        );

        let tc = tidb_cluster(&world, plane, &ns2).await;
        assert_eq!(
            tc.data.pointer("/spec/recoveryMode"),
            Some(&json!(false)),
            "{plane}: recovery mode left"
        );
        assert!(
            tc.metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key("tidb.pingcap.com/tikv-volumes-ready")),
            "{plane}: volumes-ready annotation dropped"
        );
    }
    let pd2 = world.pd(&key2).await.expect("PD of the restored cluster");
    let runs = pd2["restoreData"].as_array().expect("restoreData");
    assert_eq!(runs.len(), 1, "restore-data ran once: {pd2}");
    assert_eq!(runs[0]["by"], format!("{chosen}/{ns2}/{rt}").as_str());
    assert_eq!(runs[0]["resolvedTs"].as_u64(), Some(min_ts));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_invalid_when_their_tidb_cluster_does_not_fit() {
    let (world, planes, ns, _) = seeded("dpc-invalid", 1, |s| s.across_k8s(false)).await;
    let api = world.backups(&planes[0], &ns);
    let member =
        Backup::of(&world, &ns, "fed-inv", &planes, "inv").member(&planes[0], "initialize");
    create(&api, &member.object()).await;
    let obj = wait_condition(&api, "fed-inv", "Invalid").await;
    let invalid = condition_saying(&obj, "Invalid", "acrossK8s");
    assert_eq!(invalid["reason"], "InvalidSpec");
    assert_eq!(status_str(&obj, "phase"), "Invalid");
    assert!(!has(&obj, "Scheduled"), "no init job for an invalid member");
    assert!(world.pd(&ns).await.is_none(), "nothing was paused");

    // a volume-snapshot restore needs its TidbCluster in recovery mode
    let live = TidbClusterSeed::new(&ns, "live", format!("{ns}-live")).stores_per_plane(1);
    seed_tidb_cluster(&world.kubeconfig, &planes, &live)
        .await
        .expect("seed");
    let restores = world.restores(&planes[0], &ns);
    let restore = RestoreMember::new(
        "fed-rinv",
        &ns,
        "live",
        &world.bucket,
        &format!("{ns}/none-{}", planes[0]),
        "us-west-2a",
    );
    create(&restores, &restore.object()).await;
    let obj = wait_condition(&restores, "fed-rinv", "Invalid").await;
    condition_saying(&obj, "Invalid", "recovery mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_fault_fails_the_member_and_teardown_leaves_nothing_paused() {
    let (world, planes, ns, _) = seeded("dpc-fault", 3, |s| s).await;
    let failing = planes[1].clone();
    let rule = format!("{failing}:execute:fail");
    let bk = Backup::of(&world, &ns, "fed-fault", &planes, "fault");
    // the federation copies the VolumeBackup's annotations onto every member
    bk.start(|m| m.annotation(FAULT, &rule)).await;
    let failed = wait_has(&bk.api(&failing), &bk.name, "VolumeBackupFailed").await;
    assert_eq!(reason(&failed, "VolumeBackupFailed"), "SimulatedFault");
    assert!(
        !has(&failed, "VolumeBackupSnapshotsCreated"),
        "the fault hits before snapshots"
    );

    // teardown everywhere, resume requested on the initialized member (as the federation does)
    for plane in &planes {
        let mut spec = json!({"federalVolumeBackupPhase": "teardown"});
        if *plane == planes[0] {
            spec["resumeGcSchedule"] = json!(true);
        }
        patch_spec(&bk.api(plane), &bk.name, spec).await;
    }
    let end = wait_has(&bk.api(&failing), &bk.name, "Failed").await;
    assert_eq!(reason(&end, "Failed"), "VolumeBackupFailed");
    for plane in planes.iter().filter(|p| **p != failing) {
        wait_for(&bk.api(plane), &bk.name, "terminal", WAIT, |o| {
            has(o, "Complete") || has(o, "Failed")
        })
        .await;
    }
    let pd = world.pd(&ns).await.expect("PD");
    assert_eq!(pd["paused"], false, "{pd}");
    assert_eq!(pd_counts(&pd), (Some(1), Some(1), Some(0)), "{pd}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_backup_with_clean_policy_delete_removes_its_snapshots_and_s3_objects() {
    let (world, planes, ns, _) = seeded("dpc-clean", 3, |s| s).await;
    let bk = Backup::of(&world, &ns, "fed-clean", &planes, "clean");
    bk.start(|m| m.clean_policy("Delete", 2.0)).await;
    let done = bk.finish().await;

    let mut snapshots = BTreeMap::new();
    for plane in &planes {
        let obj = &done[plane];
        assert!(
            obj.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|x| x == "tidb.pingcap.com/backup-protection")),
            "{plane}: a Delete backup is protected by a finalizer"
        );
        let ids = bk.snapshot_ids(plane).await;
        assert_eq!(bk.snapshots_found(&ids).await, ids.len());
        snapshots.insert(plane.clone(), ids);
    }
    // deleted together: each data plane cleans its own while the others do
    for plane in &planes {
        bk.api(plane)
            .delete(&bk.name, &DeleteParams::default())
            .await
            .expect("delete member");
    }
    for plane in &planes {
        wait_gone(&bk.api(plane), &bk.name).await;
        for id in &snapshots[plane] {
            let res = world.cloud.snapshots_by_id(std::slice::from_ref(id)).await;
            match res {
                Ok(found) => assert!(found.is_empty(), "{plane}: snapshot {id} still exists"),
                Err(e) => assert_eq!(
                    e.code.as_deref(),
                    Some("InvalidSnapshot.NotFound"),
                    "{plane}: {e}"
                ),
            }
        }
        let left = bk.objects(plane).await;
        assert!(
            left.is_empty(),
            "{plane}: objects left under the prefix: {left:?}"
        );
    }
}

/// Upstream `deleteSnapshotsAndBackupMeta` (CONFORMANCE C5): a clean job that finds no
/// `backupmeta` deletes nothing. A Failed backup is then `Clean` (its `clustermeta` and manifests
/// stay: the old simulator deleted them); any other backup is `CleanFailed`, with its snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_job_without_backupmeta_deletes_nothing_clean_when_failed_else_clean_failed() {
    let (world, planes, ns, _) = seeded("dpc-nometa", 2, |s| s).await;
    let (ok, failing) = (planes[0].clone(), planes[1].clone());
    let rule = format!("{failing}:execute:fail");
    let bk = Backup::of(&world, &ns, "fed-nometa", &planes, "nometa");
    bk.start(|m| m.annotation(FAULT, &rule).clean_policy("Delete", 2.0))
        .await;
    wait_has(&bk.api(&failing), &bk.name, "VolumeBackupFailed").await;
    wait_condition(&bk.api(&ok), &bk.name, "VolumeBackupSnapshotsCreated").await;
    patch_spec(&bk.api(&ok), &bk.name, json!({"resumeGcSchedule": true})).await;
    wait_condition(&bk.api(&ok), &bk.name, "VolumeBackupComplete").await;
    for plane in &planes {
        patch_spec(
            &bk.api(plane),
            &bk.name,
            json!({"federalVolumeBackupPhase": "teardown"}),
        )
        .await;
    }
    wait_condition(&bk.api(&ok), &bk.name, "Complete").await;
    wait_has(&bk.api(&failing), &bk.name, "Failed").await;

    // the Failed member: BR never wrote backupmeta; the operator wrote clustermeta and manifests
    let before = bk.objects(&failing).await;
    assert!(
        before.iter().any(|k| k.ends_with("/clustermeta"))
            && !before.iter().any(|k| k.ends_with("/backupmeta")),
        "{before:?}"
    );
    let log = PhaseLog::start(bk.api(&failing), &bk.name).await;
    bk.delete(&failing).await;
    log.assert_walk(&["Failed", "Clean"], "failed member's deletion")
        .await;
    assert_eq!(
        bk.objects(&failing).await,
        before,
        "nothing deleted for a Failed backup without backupmeta"
    );

    // the Complete member, its backupmeta gone: CleanFailed, its snapshots and objects stay
    let ids = bk.snapshot_ids(&ok).await;
    world
        .cloud
        .s3
        .delete_object()
        .bucket(&world.bucket)
        .key(format!("{}/backupmeta", bk.member_prefix(&ok)))
        .send()
        .await
        .expect("delete backupmeta");
    let left = bk.objects(&ok).await;
    bk.api(&ok)
        .delete(&bk.name, &DeleteParams::default())
        .await
        .expect("delete member");
    let obj = wait_has(&bk.api(&ok), &bk.name, "CleanFailed").await;
    assert_eq!(reason(&obj, "CleanFailed"), "CleanBackupDataFailed");
    assert!(
        obj.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == "tidb.pingcap.com/backup-protection")),
        "a CleanFailed member keeps its finalizer"
    );
    assert_eq!(bk.snapshots_found(&ids).await, ids.len(), "snapshots kept");
    assert_eq!(bk.objects(&ok).await, left, "objects kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_job_that_dies_fails_initialize_and_only_its_lease_ends_the_pause() {
    let (world, planes, ns, _) = seeded("dpc-crash", 1, |s| s).await;
    // a rule on the TidbCluster applies to every member of that cluster
    let tcs = world.tidbclusters(&planes[0], &ns);
    tcs.patch(
        TC,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({"metadata": {"annotations": {FAULT: "*:initialize:crash-init-job=300"}}}),
        ),
    )
    .await
    .expect("annotate the TidbCluster");
    let api = world.backups(&planes[0], &ns);
    let member =
        Backup::of(&world, &ns, "fed-crash", &planes, "crash").member(&planes[0], "initialize");
    create(&api, &member.object()).await;
    let obj = wait_has(&api, "fed-crash", "VolumeBackupInitializeFailed").await;
    assert!(
        has(&obj, "VolumeBackupInitialized"),
        "it had paused before dying: {:?}",
        condition_types(&obj)
    );
    assert_eq!(
        reason(&obj, "VolumeBackupInitializeFailed"),
        "InitializeJobCompletedOrFailed"
    );

    patch_spec(
        &api,
        "fed-crash",
        json!({"federalVolumeBackupPhase": "teardown", "resumeGcSchedule": true}),
    )
    .await;
    let end = wait_has(&api, "fed-crash", "Failed").await;
    assert_eq!(reason(&end, "Failed"), "VolumeBackupInitializeFailed");
    let pd = world.pd(&ns).await.expect("PD");
    let (pauses, resumes, _) = pd_counts(&pd);
    assert_eq!(
        (pauses, resumes),
        (Some(1), Some(0)),
        "a dead job resumes nothing: {pd}"
    );
    let expired = pd["expireCount"].as_u64() == Some(1) && pd["paused"] == false;
    let still_leased = pd["paused"] == true && pd["leaseExpiresAt"].is_string();
    assert!(
        expired || still_leased,
        "the pause ends only when its lease runs out: {pd}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_init_job_deadline_fails_initialize_and_resumes_gc() {
    let (world, planes, ns, _) = seeded("dpc-deadline", 1, |s| s).await;
    let api = world.backups(&planes[0], &ns);
    let member = Backup::of(&world, &ns, "fed-dl", &planes, "dl")
        .member(&planes[0], "initialize")
        .init_deadline(2);
    create(&api, &member.object()).await;
    wait_condition(&api, "fed-dl", "VolumeBackupInitialized").await;
    // nobody moves it to execute: the init job hits activeDeadlineSeconds
    let obj = wait_has(&api, "fed-dl", "VolumeBackupInitializeFailed").await;
    let failed = condition_saying(
        &obj,
        "VolumeBackupInitializeFailed",
        "volumeBackupInitJobMaxActiveSeconds",
    );
    assert_eq!(failed["reason"], "InitializeJobCompletedOrFailed");
    let pd = world.pd(&ns).await.expect("PD");
    assert_eq!(pd["paused"], false, "{pd}");
    let (pauses, resumes, _) = pd_counts(&pd);
    assert_eq!((pauses, resumes), (Some(1), Some(1)), "{pd}");
    let pause = pd_events(&pd, "pause")[0]["at"].as_str().expect("at");
    let resume = pd_events(&pd, "resume")[0]["at"].as_str().expect("at");
    let window = chrono::DateTime::parse_from_rfc3339(resume).expect("rfc3339")
        - chrono::DateTime::parse_from_rfc3339(pause).expect("rfc3339");
    assert!(
        window < chrono::Duration::seconds(3),
        "paused for {window} with a 2 s deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_retain_backup_keeps_its_snapshots_and_s3_objects() {
    let (world, planes, ns, _) = seeded("dpc-retain", 1, |s| s).await;
    let bk = Backup::of(&world, &ns, "fed-keep", &planes, "keep");
    bk.start(|m| m).await;
    let done = bk.finish().await;
    let plane = &planes[0];
    assert!(
        done[plane]
            .metadata
            .finalizers
            .as_ref()
            .is_none_or(Vec::is_empty),
        "Retain: no finalizer"
    );
    let ids = bk.snapshot_ids(plane).await;
    bk.delete(plane).await;
    assert_eq!(bk.snapshots_found(&ids).await, ids.len(), "snapshots kept");
    let left = bk.objects(plane).await;
    assert!(
        left.iter().any(|k| k.ends_with("/backupmeta"))
            && left.iter().any(|k| k.ends_with("/clustermeta")),
        "{left:?}"
    );

    // the kept data still occupies the prefix: a new backup there is refused
    let again = bk.member(plane, "execute").object();
    create(&bk.api(plane), &again).await;
    let refused = wait_has(&bk.api(plane), &bk.name, "Failed").await;
    assert_eq!(reason(&refused, "Failed"), "FileExistedInExternalStorage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_check_wal_only_warm_up_async_and_clean_up_a_failed_restore_volume() {
    // stores with a second (raft) volume: a restore needs the same storageVolumes layout
    let raft = |s: TidbClusterSeed| s.storage_volume("raft", "/var/lib/raft", "5Gi");
    let (world, planes, ns, _) = seeded("dpc-variants", 3, raft).await;
    let bk = Backup::of(&world, &ns, "fed-src", &planes, "src");
    bk.start(|m| m).await;
    bk.finish().await;
    let first = planes[0].clone();
    let second = planes[1].clone();
    let last = planes[planes.len() - 1].clone();
    let az = |plane: &str| brfed_sim_operator::seed::default_az(&world.cloud.region, plane, 0);

    // three independent one-member restores, each into its own recovery-mode TidbCluster
    let target = |suffix: &str| unique(&format!("dpc-rv-{suffix}"));
    let (ns_wal, ns_async, ns_fail) = (target("wal"), target("async"), target("fail"));
    for (tns, plane) in [(&ns_wal, &first), (&ns_async, &second), (&ns_fail, &last)] {
        let s = raft(TidbClusterSeed::new(tns.as_str(), TC, tns.as_str()).stores_per_plane(STORES));
        seed_restore_target(&world.kubeconfig, std::slice::from_ref(plane), &s)
            .await
            .expect("restore target");
    }
    let wal = bk
        .restore_member("fed-wal", &ns_wal, &first, &az(&first))
        .warmup("sync", "check-wal-only");
    create(&world.restores(&first, &ns_wal), &wal.object()).await;
    let asy = bk
        .restore_member("fed-async", &ns_async, &second, &az(&second))
        .warmup("async", "hybrid");
    create(&world.restores(&second, &ns_async), &asy.object()).await;
    let fail = bk
        .restore_member("fed-fail", &ns_fail, &last, &az(&last))
        .annotation(FAULT, &format!("{last}:restore-volume:fail"));
    create(&world.restores(&last, &ns_fail), &fail.object()).await;

    let wal_done = wait_condition(&world.restores(&first, &ns_wal), "fed-wal", "Complete").await;
    assert_eq!(
        condition_types(&wal_done),
        [
            "Scheduled",
            "Running",
            "VolumeComplete",
            "WarmUpStarted",
            "WarmUpComplete",
            "Complete"
        ],
        "check-wal-only completes without starting TiKV"
    );
    let wal_tc = tidb_cluster(&world, &first, &ns_wal).await;
    assert_eq!(
        wal_tc.data.pointer("/spec/recoveryMode"),
        Some(&json!(true)),
        "check-wal-only leaves recovery mode alone"
    );

    let async_api = world.restores(&second, &ns_async);
    let async_obj = wait_for(
        &async_api,
        "fed-async",
        "TikvComplete and WarmUpComplete",
        WAIT,
        |o| has(o, "TikvComplete") && has(o, "WarmUpComplete"),
    )
    .await;
    let types = condition_types(&async_obj);
    assert_eq!(
        types[..4],
        ["Scheduled", "Running", "VolumeComplete", "WarmUpStarted"],
        "{types:?}"
    );
    let async_tc = tidb_cluster(&world, &second, &ns_async).await;
    assert_eq!(
        async_tc
            .data
            .pointer("/status/tikv/stores")
            .and_then(Value::as_object)
            .map(|s| s.len()),
        Some(STORES),
        "TiKV came up with the backup's stores"
    );

    let backupmeta = bk.object("backupmeta", &first).await.expect("backupmeta");
    let types: Vec<&str> = backupmeta["tikv"]["stores"][0]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| v["type"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        types,
        ["storage.data-dir", ""],
        "the data volume first, then the raft volume"
    );

    let fail_api = world.restores(&last, &ns_fail);
    let failed = wait_has(&fail_api, "fed-fail", "CleanVolumeComplete").await;
    assert!(
        has(&failed, "Failed") && !has(&failed, "VolumeComplete"),
        "{:?}",
        condition_types(&failed)
    );
    assert_eq!(reason(&failed, "Failed"), "SimulatedFault");
    let meta = bk.object("backupmeta", &last).await.expect("backupmeta");
    for store in meta["tikv"]["stores"].as_array().expect("stores") {
        for v in store["volumes"].as_array().expect("volumes") {
            let snap = v["snapshot_id"].as_str().expect("snapshot_id");
            let left = world
                .cloud
                .volumes_from_snapshot(snap)
                .await
                .expect("DescribeVolumes");
            assert!(
                left.is_empty(),
                "volumes restored from {snap} by the failed member are deleted: {left:?}"
            );
        }
    }
}

/// What the warmup modes do after `VolumeComplete`, as upstream `restore_manager.go` decides it:
/// `check-wal-only` finishes (`Complete`) only on the sync path; with async warmup
/// `startTiKVIfNeeded` never starts TiKV and the warmup jobs wait for TiKV pods that never come,
/// so the member stays at `VolumeComplete`. A failed warmup job fails the restore only with
/// `check-wal-only`; otherwise it counts as finished. Async: `WarmUpComplete` after `TikvComplete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_modes_follow_upstream_async_check_wal_only_stays_at_volume_complete() {
    let (world, planes, ns, _) = seeded("dpc-warm", 1, |s| s).await;
    let plane = planes[0].clone();
    let bk = Backup::of(&world, &ns, "fed-src", &planes, "warm");
    bk.start(|m| m).await;
    bk.finish().await;
    let az = brfed_sim_operator::seed::default_az(&world.cloud.region, &plane, 0);
    let fail_warmup = format!("{plane}:warmup:fail");

    // (member name, warmup, strategy, fault on the warmup jobs)
    let cases = [
        ("wal-async", "async", "check-wal-only", None),
        ("wal-none", "", "check-wal-only", None),
        ("wal-sync-bad", "sync", "check-wal-only", Some(&fail_warmup)),
        ("sync-bad", "sync", "hybrid", Some(&fail_warmup)),
        ("async-bad", "async", "fio", Some(&fail_warmup)),
    ];
    let mut targets = BTreeMap::new();
    for (name, warmup, strategy, fault) in cases {
        let tns = unique(&format!("dpc-w-{name}"));
        seed_restore_target(
            &world.kubeconfig,
            std::slice::from_ref(&plane),
            &TidbClusterSeed::new(tns.as_str(), TC, tns.as_str()).stores_per_plane(STORES),
        )
        .await
        .expect("restore target");
        // warmup "" = no warmup (the CRD's `warmup` is a free string)
        let mut member = bk
            .restore_member(name, &tns, &plane, &az)
            .warmup(warmup, strategy);
        if let Some(rule) = fault {
            member = member.annotation(FAULT, rule);
        }
        create(&world.restores(&plane, &tns), &member.object()).await;
        targets.insert(name, tns);
    }

    // a failed warmup job of a hybrid/fio restore counts as finished: TiKV starts all the same
    let sync_bad = wait_has(
        &world.restores(&plane, &targets["sync-bad"]),
        "sync-bad",
        "TikvComplete",
    )
    .await;
    assert_eq!(
        condition_types(&sync_bad),
        [
            "Scheduled",
            "Running",
            "VolumeComplete",
            "WarmUpStarted",
            "WarmUpComplete",
            "TikvComplete"
        ],
        "sync hybrid with a failed warmup job"
    );
    let async_bad = wait_for(
        &world.restores(&plane, &targets["async-bad"]),
        "async-bad",
        "WarmUpComplete",
        WAIT,
        |o| has(o, "WarmUpComplete"),
    )
    .await;
    assert_eq!(
        condition_types(&async_bad),
        [
            "Scheduled",
            "Running",
            "VolumeComplete",
            "WarmUpStarted",
            "TikvComplete",
            "WarmUpComplete"
        ],
        "async: warmup jobs on running TiKV pods, WarmUpComplete only after TikvComplete"
    );

    // check-wal-only: a failed warmup job (a corrupted WAL) fails the restore
    let wal_bad = wait_has(
        &world.restores(&plane, &targets["wal-sync-bad"]),
        "wal-sync-bad",
        "Failed",
    )
    .await;
    assert_eq!(
        condition_types(&wal_bad),
        [
            "Scheduled",
            "Running",
            "VolumeComplete",
            "WarmUpStarted",
            "Failed"
        ],
    );

    // check-wal-only without sync warmup: VolumeComplete, then nothing, TiKV never started
    for name in ["wal-async", "wal-none"] {
        let api = world.restores(&plane, &targets[name]);
        wait_condition(&api, name, "VolumeComplete").await;
    }
    // well past the step, warmup and TiKV start delays of the simulator (the other cases are done)
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    for name in ["wal-async", "wal-none"] {
        let obj = world
            .restores(&plane, &targets[name])
            .get(name)
            .await
            .expect("restore member");
        assert_eq!(
            condition_types(&obj),
            ["Scheduled", "Running", "VolumeComplete"],
            "{name}: check-wal-only without sync warmup never gets further"
        );
        let tc = tidb_cluster(&world, &plane, &targets[name]).await;
        assert!(
            tc.metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key("tidb.pingcap.com/tikv-volumes-ready")),
            "{name}: TiKV is not started"
        );
        assert_eq!(tc.data.pointer("/spec/recoveryMode"), Some(&json!(true)));
        // the operator tags the volumes once they are complete, whatever comes next
        let uid = obj.metadata.uid.clone().expect("uid");
        let vols = world
            .cloud
            .volumes_tagged(&[("sim.brfed.dev/restore-uid", uid.as_str())])
            .await
            .expect("DescribeVolumes");
        assert_eq!(vols.len(), STORES, "{name}: its volumes");
        for v in &vols {
            assert_eq!(
                v.tags
                    .get("kubernetes.io/created-for/pvc/namespace")
                    .map(String::as_str),
                Some(targets[name].as_str()),
                "{name}: {v:?}"
            );
        }
    }
}
