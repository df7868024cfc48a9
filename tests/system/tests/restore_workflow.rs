//! Federated restores end to end on the local world: back up the seeded 3-cluster TiDB with
//! brfed, then restore it into recovery-mode TidbClusters with brfed's restore state machine.

use brfed_sim_operator::seed::{TidbClusterSeed, seed_restore_target};
use brfed_system_tests::dataplane::World;
use brfed_system_tests::fixtures::{SeededCluster, VolumeRestore, restore_clusters, seeded_world};
use brfed_system_tests::workflow::{Finished, Workflows, doc_condition_types};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const RUN: Duration = Duration::from_secs(180);

struct Case {
    world: World,
    flows: Workflows,
    planes: Vec<String>,
    backup: String,
    backup_doc: Value,
    target_ns: String,
    target_key: String,
}

/// Seeds a source cluster, backs it up with brfed, seeds a restore target (`stores` TiKV per plane).
async fn backed_up(prefix: &str, target_stores: usize) -> Case {
    let (world, flows, tc) = seeded_world(prefix, "src", 2).await;
    // A dotted name, as the original accepts: the data plane's objects, the execution and the
    // catalog all take it.
    let backup = format!("bk.{}", tc.id());
    let input = tc.backup(&backup, &world.bucket).build();
    let done = flows.run(&flows.backup_arn, &backup, &input, RUN).await;
    let SeededCluster { ns, planes, .. } = tc;
    assert_eq!(done.status, "SUCCEEDED", "backup: {done:?}");
    let target_ns = format!("{ns}-rt");
    let target_key = format!("{ns}-dst");
    seed_restore_target(
        &world.kubeconfig,
        &planes,
        &TidbClusterSeed::new(&target_ns, "restored", &target_key).stores_per_plane(target_stores),
    )
    .await
    .expect("seed target");
    Case {
        world,
        flows,
        planes,
        backup,
        backup_doc: done.output.unwrap(),
        target_ns,
        target_key,
    }
}

impl Case {
    /// The restore `name` of the backup into the target namespace: template, annotations and
    /// options empty, to be set.
    fn restore_of(&self, name: &str) -> VolumeRestore {
        self.restore_into(&self.target_ns, name)
    }

    fn restore_into(&self, target_ns: &str, name: &str) -> VolumeRestore {
        let clusters = restore_clusters(&self.planes, "restored", target_ns, "us-west-2");
        VolumeRestore::from_backup(name, "br", clusters, &self.backup)
            .annotations(json!({}))
            .options(json!({}))
    }

    /// 8 characters of the target namespace unique to this case.
    fn suffix(&self) -> &str {
        let ns = &self.target_ns;
        &ns[ns.len() - 11..ns.len() - 3]
    }

    /// A restore name unique to this case: `{prefix}-{suffix}`.
    fn restore_name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.suffix())
    }

    async fn restore(&self, name: &str, input: &Value) -> Finished {
        self.flows
            .run(&self.flows.restore_arn, name, input, RUN)
            .await
    }

    async fn member(&self, plane: &str, name: &str) -> Option<kube::api::DynamicObject> {
        self.world
            .restores(plane, &self.target_ns)
            .get_opt(&format!("fed-{name}"))
            .await
            .unwrap()
    }
}

fn az(plane: &str) -> String {
    brfed_sim_operator::seed::default_az("us-west-2", plane, 0)
}

fn step_names(doc: &Value) -> Vec<String> {
    doc["status"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stepName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_from_its_own_snapshots_with_restore_data_on_the_minimum_member() {
    let c = backed_up("rt-happy", 2).await;
    let name = c.restore_name("rt.daily");
    let done = c.restore(&name, &c.restore_of(&name).build()).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let doc = done.output.unwrap();
    assert_eq!(doc["status"]["phase"], "Complete");
    assert_eq!(
        doc["status"]["commitTs"], c.backup_doc["status"]["commitTs"],
        "restored to the backup's minimum resolved ts"
    );
    let steps = step_names(&doc);
    for s in ["RestoreVolume", "StartTiKV", "RestoreData", "RestartTiKV"] {
        assert!(steps.contains(&s.to_string()), "{steps:?}");
    }
    assert!(
        doc["status"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["timeTaken"].is_string()),
        "{}",
        doc["status"]["steps"]
    );

    // restore-data ran once, on the member whose backup had the minimum commitTs
    let min_plane = c.backup_doc["status"]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .min_by_key(|b| b["commitTs"].as_str().unwrap().parse::<u64>().unwrap())
        .unwrap()["k8sClusterName"]
        .as_str()
        .unwrap()
        .to_string();
    let pd = c.world.pd(&c.target_key).await.expect("target PD");
    let runs = pd["restoreData"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{pd}");
    assert!(
        runs[0]["by"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{min_plane}/")),
        "{runs:?} vs {min_plane}"
    );
    for p in &c.planes {
        let m = c.member(p, &name).await.unwrap();
        let phase = m.data["spec"]["federalVolumeRestorePhase"]
            .as_str()
            .unwrap();
        assert_eq!(phase, "restore-finish");
    }

    // restored volumes come from exactly the backup's snapshots, in the right AZs
    let ec2 = &c.world.cloud.ec2;
    for (plane, meta) in restoremetas(&c).await {
        let plane = plane.as_str();
        for store in meta["tikv"]["stores"].as_array().unwrap() {
            for v in store["volumes"].as_array().unwrap() {
                let id = v["restore_volume_id"].as_str().unwrap();
                let vol = ec2.describe_volumes().volume_ids(id).send().await.unwrap();
                let vol = &vol.volumes()[0];
                assert_eq!(
                    vol.snapshot_id(),
                    v["snapshot_id"].as_str(),
                    "{plane}: {id}"
                );
                assert_eq!(
                    vol.availability_zone(),
                    Some(az(plane).as_str()),
                    "{plane}: {id}"
                );
            }
        }
        let tc = c
            .world
            .tidbclusters(plane, &c.target_ns)
            .get("restored")
            .await
            .unwrap();
        assert_eq!(
            tc.data["spec"]["recoveryMode"], false,
            "{plane} still in recovery mode"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_warmup_mode_completes_and_check_wal_only_skips_tikv() {
    let c = backed_up("rt-warm", 2).await;
    for (i, (warmup, strategy)) in [
        ("sync", "hybrid"),
        ("async", "fio"),
        ("sync", "check-wal-only"),
    ]
    .into_iter()
    .enumerate()
    {
        // each mode restores into its own fresh target
        let ns = format!("{}-{i}", c.target_ns);
        seed_restore_target(
            &c.world.kubeconfig,
            &c.planes,
            &TidbClusterSeed::new(&ns, "restored", format!("{ns}-k")).stores_per_plane(2),
        )
        .await
        .unwrap();
        let name = format!("w{i}-{}", c.suffix());
        let mut input = c
            .restore_of(&name)
            .template(json!({"warmup": warmup, "warmupStrategy": strategy}))
            .build();
        for cl in input["spec"]["clusters"].as_array_mut().unwrap() {
            cl["tcNamespace"] = json!(ns);
        }
        let done = c.restore(&name, &input).await;
        assert_eq!(done.status, "SUCCEEDED", "{warmup}/{strategy}: {done:?}");
        let doc = done.output.unwrap();
        let types = doc_condition_types(&doc);
        assert!(
            types.contains(&"WarmUpComplete"),
            "{warmup}/{strategy}: {types:?}"
        );
        let steps = step_names(&doc);
        if strategy == "check-wal-only" {
            assert!(
                !steps.contains(&"RestoreData".to_string()),
                "check-wal-only runs no restore-data: {steps:?}"
            );
            assert!(
                c.world
                    .pd(&format!("{ns}-k"))
                    .await
                    .is_none_or(|p| p["restoreData"].as_array().is_none_or(Vec::is_empty))
            );
        } else {
            assert!(
                steps.contains(&"WarmUp".to_string()) && steps.contains(&"RestoreData".to_string()),
                "{steps:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_mismatch_is_refused_before_anything_is_created() {
    let c = backed_up("rt-mismatch", 3).await;
    let name = c.restore_name("mm");
    let done = c.restore(&name, &c.restore_of(&name).build()).await;
    done.assert_failed_with("TopologyMismatch", "TiKV replicas");
    for p in &c.planes {
        assert!(
            c.member(p, &name).await.is_none(),
            "a member was created in {p}"
        );
    }
}

async fn failing(phase: &str, cleanup: bool) {
    let c = backed_up(&format!("rt-f{}", &phase[8..]), 2).await;
    let name = format!("f{}-{}", &phase[8..11], c.suffix());
    // restore-data runs on one member only (the minimum commitTs): fault every plane's
    let fault = json!({"sim.brfed.dev/fault": format!("{}:{phase}:fail", if phase == "restore-data" { "*" } else { "dp2" })});
    let done = c
        .restore(
            &name,
            &c.restore_of(&name)
                .annotations(fault)
                .options(json!({"cleanupOnFailure": cleanup}))
                .build(),
        )
        .await;
    assert_eq!(done.status, "FAILED", "{phase}");
    assert_eq!(
        done.error.as_deref(),
        Some("MemberFailed"),
        "{phase}: {done:?}"
    );
    let doc = brfed_system_tests::workflow::catalog_restore_doc(&c.world, "br", &name)
        .await
        .expect("catalog");
    assert_eq!(doc["status"]["phase"], "Failed");
    let left = doc["brfed"]["leftovers"]
        .as_array()
        .expect("leftovers report");
    assert_eq!(left.len(), 3, "{left:?}");
    let with_volumes = left
        .iter()
        .filter(|l| !l["volumes"].as_array().unwrap().is_empty())
        .count();
    // restore-volume failed in dp2 only: the others did create volumes; later phases: all did
    assert!(
        with_volumes >= 2,
        "the report names the volumes that were created: {left:?}"
    );
    for l in left {
        assert!(
            !l["cleanupCommands"].as_array().unwrap().is_empty() || !cleanup,
            "{l}"
        );
        if cleanup {
            let plane = l["k8sClusterName"].as_str().unwrap();
            assert!(
                c.member(plane, &name).await.is_none(),
                "{plane}: member left after cleanup"
            );
            for v in l["volumes"].as_array().unwrap() {
                let r = c
                    .world
                    .cloud
                    .ec2
                    .describe_volumes()
                    .volume_ids(v.as_str().unwrap())
                    .send()
                    .await;
                assert!(
                    r.is_err() || r.unwrap().volumes().is_empty(),
                    "{plane}: volume {v} left after cleanup"
                );
            }
        } else {
            assert!(l["member"].is_string(), "{l}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_volume_failure_reports_what_was_left() {
    failing("restore-volume", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_data_failure_is_cleaned_up_when_asked() {
    failing("restore-data", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_finish_failure_is_cleaned_up_when_asked() {
    failing("restore-finish", true).await;
}

fn reported_volumes(doc: &Value) -> BTreeSet<String> {
    doc["brfed"]["leftovers"]
        .as_array()
        .expect("leftovers report")
        .iter()
        .flat_map(|l| l["volumes"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

async fn wait_catalog(c: &Case, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        if let Some(doc) =
            brfed_system_tests::workflow::catalog_restore_doc(&c.world, "br", name).await
            && ok(&doc)
        {
            return doc;
        }
        assert!(start.elapsed() < RUN, "{name}: {what} not seen in {RUN:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_restore_is_marked_failed_with_what_it_left() {
    let c = backed_up("rt-stop", 2).await;
    let name = c.restore_name("st");
    let input = c
        .restore_of(&name)
        .annotations(json!({"sim.brfed.dev/fault": "dp2:restore-volume:hang"}))
        .build();
    let arn = c.flows.start(&c.flows.restore_arn, &name, &input).await;
    // dp1 and dp3 created their volumes; dp2 hangs in restore-volume
    let start = std::time::Instant::now();
    loop {
        let mut ready = c.member("dp2", &name).await.is_some();
        for p in ["dp1", "dp3"] {
            ready &= c.member(p, &name).await.is_some_and(|m| {
                m.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| x["type"] == "VolumeComplete")
            });
        }
        if ready {
            break;
        }
        assert!(
            start.elapsed() < RUN,
            "members never reached restore-volume"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    c.flows.stop(&arn).await;
    let doc = wait_catalog(&c, &name, "Failed", |d| d["status"]["phase"] == "Failed").await;
    let status = doc["status"].to_string();
    assert!(status.contains("ExecutionAborted"), "{status}");
    let left = doc["brfed"]["leftovers"].as_array().expect("leftovers");
    assert_eq!(left.len(), 3, "{left:?}");
    for l in left {
        let plane = l["k8sClusterName"].as_str().unwrap();
        assert!(l["member"].is_string(), "{plane}: {l}");
        assert_eq!(l["tidbClusterInRecoveryMode"], true, "{plane}: {l}");
        let notes = l["notes"].as_array().map(Vec::len).unwrap_or(0);
        if plane == "dp2" {
            assert!(notes > 0, "dp2 was still creating volumes: {l}");
        } else {
            assert_eq!(l["volumes"].as_array().unwrap().len(), 2, "{plane}: {l}");
        }
    }
    // every volume of this restore that exists is in the report
    let have = c.world.target_volumes(&c.target_key).await;
    assert_eq!(reported_volumes(&doc), have);
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_of_one_backup_report_only_their_own_volumes() {
    let c = backed_up("rt-own", 2).await;
    let other_ns = format!("{}-2", c.target_ns);
    seed_restore_target(
        &c.world.kubeconfig,
        &c.planes,
        &TidbClusterSeed::new(&other_ns, "restored", format!("{}-2", c.target_key))
            .stores_per_plane(2),
    )
    .await
    .expect("seed second target");
    let suffix = c.suffix();
    // B hangs at restore-data until its phase deadline; meanwhile A restores the same backup
    // (and rewrites the backup's restoremeta with its own volumes).
    let b = format!("ob-{suffix}");
    let b_input = c
        .restore_into(&other_ns, &b)
        .annotations(json!({"sim.brfed.dev/fault": "*:restore-data:hang"}))
        .options(json!({"phaseTimeoutSeconds": 45}))
        .build();
    let b_arn = c.flows.start(&c.flows.restore_arn, &b, &b_input).await;
    wait_catalog(&c, &b, "RestoreData", |d| {
        step_names(d).contains(&"RestoreData".to_string())
    })
    .await;
    let a = format!("oa-{suffix}");
    let done = c.restore(&a, &c.restore_of(&a).build()).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let b_done = c.flows.wait(&b_arn, RUN).await;
    assert_eq!(b_done.status, "FAILED", "{b_done:?}");
    let doc = brfed_system_tests::workflow::catalog_restore_doc(&c.world, "br", &b)
        .await
        .unwrap();
    let reported = reported_volumes(&doc);
    let mine = c.world.target_volumes(&format!("{}-2", c.target_key)).await;
    let theirs = c.world.target_volumes(&c.target_key).await;
    assert_eq!(mine.len(), 6, "two TiKV stores a plane");
    assert_eq!(reported, mine, "B's report names exactly B's volumes");
    assert!(
        reported.is_disjoint(&theirs),
        "{reported:?} vs A's {theirs:?}"
    );
}

/// The `restoremeta` the last restore of each member of the backup wrote beside its
/// `backupmeta`, by data plane.
async fn restoremetas(c: &Case) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for b in c.backup_doc["status"]["backups"].as_array().unwrap() {
        let plane = b["k8sClusterName"].as_str().unwrap().to_string();
        let (bucket, prefix) = b["backupPath"].as_str().unwrap()["s3://".len()..]
            .split_once('/')
            .unwrap();
        let meta = c
            .world
            .cloud
            .get(bucket, &format!("{prefix}/restoremeta"))
            .await
            .expect("S3 get")
            .expect("restoremeta");
        out.push((plane, serde_json::from_slice(&meta).unwrap()));
    }
    out
}

/// The volumes the last restore of each member wrote into the backup's `restoremeta`.
async fn restoremeta_volumes(c: &Case) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, meta) in restoremetas(c).await {
        for store in meta["tikv"]["stores"].as_array().unwrap() {
            for v in store["volumes"].as_array().unwrap() {
                out.insert(v["restore_volume_id"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn two_restores_in_turn_into_one_target_each_clean_up_only_their_own_volumes() {
    let c = backed_up("rt-turn", 2).await;
    let suffix = c.suffix();
    let first = format!("t1-{suffix}");
    let done = c.restore(&first, &c.restore_of(&first).build()).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let first_volumes = restoremeta_volumes(&c).await;
    assert_eq!(first_volumes.len(), 6, "two TiKV stores a plane");

    // The same namespace and TidbCluster names, back in recovery mode; the second restore fails
    // after every member made its volumes, and cleans up.
    seed_restore_target(
        &c.world.kubeconfig,
        &c.planes,
        &TidbClusterSeed::new(&c.target_ns, "restored", &c.target_key).stores_per_plane(2),
    )
    .await
    .expect("reset the target");
    let second = format!("t2-{suffix}");
    let done = c
        .restore(
            &second,
            &c.restore_of(&second)
                .annotations(json!({"sim.brfed.dev/fault": "*:restore-data:fail"}))
                .options(json!({"cleanupOnFailure": true}))
                .build(),
        )
        .await;
    assert_eq!(done.status, "FAILED", "{done:?}");
    let doc = brfed_system_tests::workflow::catalog_restore_doc(&c.world, "br", &second)
        .await
        .expect("catalog");
    let reported = reported_volumes(&doc);
    assert_eq!(reported.len(), 6, "the second restore's own volumes: {doc}");
    assert!(
        reported.is_disjoint(&first_volumes),
        "{reported:?} names the first restore's {first_volumes:?}"
    );
    let left = c.world.target_volumes(&c.target_key).await;
    assert_eq!(
        left, first_volumes,
        "the first restore's volumes survive, the second's are gone"
    );
    for l in doc["brfed"]["leftovers"].as_array().unwrap() {
        assert!(l.get("unconfirmedVolumes").is_none(), "{l}");
        let cleaned = l["cleaned"].as_array().unwrap();
        assert!(
            cleaned
                .iter()
                .all(|x| !x.as_str().unwrap().starts_with("could not")),
            "{l}"
        );
    }
    // What made them the first restore's: brfed's tags, put when its members reached
    // VolumeComplete.
    for v in c
        .world
        .cloud
        .volumes_by_id(&first_volumes.iter().cloned().collect::<Vec<_>>())
        .await
        .unwrap()
    {
        assert_eq!(
            v.tags.get("brfed.dev/volumerestore"),
            Some(&format!("br/{first}")),
            "{}: {:?}",
            v.id,
            v.tags
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_restores_started_at_once_under_one_name_exactly_one_proceeds() {
    let c = backed_up("rt-twice", 2).await;
    let name = c.restore_name("tw");
    let input = c.restore_of(&name).build();
    // Two executions of one VolumeRestore (console-generated names, or two people at once).
    let (arn, a, b) = (
        c.flows.restore_arn.clone(),
        format!("{name}-a"),
        format!("{name}-b"),
    );
    let (a, b) = tokio::join!(
        c.flows.start(&arn, &a, &input),
        c.flows.start(&arn, &b, &input)
    );
    let (a, b) = tokio::join!(c.flows.wait(&a, RUN), c.flows.wait(&b, RUN));
    let (won, lost) = if a.status == "SUCCEEDED" {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(won.status, "SUCCEEDED", "{won:?} / {lost:?}");
    assert_eq!(lost.status, "FAILED", "{lost:?}");
    assert_eq!(lost.error.as_deref(), Some("RestoreExists"), "{lost:?}");
    let doc = brfed_system_tests::workflow::catalog_restore_doc(&c.world, "br", &name)
        .await
        .expect("catalog");
    assert_eq!(doc["brfed"]["execution"].as_str(), Some(won.arn.as_str()));
    assert_eq!(doc["status"]["phase"], "Complete", "{doc}");
}

/// A restore without `azName`, as the original takes it: the member's `volumeAZ` is empty, so BR
/// makes each volume in the AZ of its backup volume, and brfed still proves and claims every one.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_without_az_names_restores_into_the_backup_volumes_azs() {
    let c = backed_up("rt-noaz", 2).await;
    let name = c.restore_name("rt-noaz");
    let mut input = c.restore_of(&name).build();
    for cl in input["spec"]["clusters"].as_array_mut().unwrap() {
        cl.as_object_mut().unwrap().remove("azName");
    }
    let done = c.restore(&name, &input).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let doc = done.output.unwrap();
    let claims = doc["brfed"]["volumeClaims"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(claims.len(), c.planes.len(), "{claims:?}");
    for cl in &claims {
        assert!(cl["refused"].is_null(), "{cl}");
        assert_eq!(cl["claimed"], 2, "{cl}");
    }
    let ec2 = &c.world.cloud.ec2;
    for (plane, meta) in restoremetas(&c).await {
        for store in meta["tikv"]["stores"].as_array().unwrap() {
            for v in store["volumes"].as_array().unwrap() {
                let id = v["restore_volume_id"].as_str().unwrap();
                let vol = ec2.describe_volumes().volume_ids(id).send().await.unwrap();
                assert_eq!(
                    vol.volumes()[0].availability_zone(),
                    v["volume_az"].as_str(),
                    "{plane}: {id} is not in its backup volume's AZ"
                );
            }
        }
    }
}
