//! The `brfed` command line on the local world, run as users run it: a process with the world's
//! environment, YAML files in a directory, its stdout, stderr and exit status. A backup created
//! and waited for, read back as tables and documents, restored from by name and deleted;
//! schedules applied, paused, resumed and deleted with their EventBridge rules; a preflight that
//! reports every problem at once and creates nothing; bad input refused with status 2 before any
//! call.
//!
//! The binary is not built by `cargo test -p brfed-system-tests` (a test does not build another
//! package's binaries): `cargo build -p brfed-cli` first; `make test-system` does.

use brfed_adapters::sfn_executions::execution_arn;
use brfed_sim_operator::seed::{TidbClusterSeed, seed_restore_target};
use brfed_system_tests::dataplane::{World, unique};
use brfed_system_tests::fixtures::SeededCluster;
use brfed_system_tests::workflow::{catalog_doc, state_machine};
use serde_json::Value;
use std::path::{Path, PathBuf};

const TICK_FN: &str = "arn:aws:lambda:us-west-2:123456789012:function:schedule-tick";

/// `target/debug/brfed`, beside this test's own `target/debug/deps/cli-*`.
fn brfed_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/deps/<test>");
    let bin = debug.join("brfed");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build -p brfed-cli; make test-system does)",
        bin.display()
    );
    bin
}

/// What one run of `brfed` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "brfed failed: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// The whitespace-separated cells of each stdout line.
    fn rows(&self) -> Vec<Vec<String>> {
        self.stdout
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    }
}

/// Runs `brfed args`, with the world's environment and `env` on top.
async fn brfed_with(args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
    let mut cmd = tokio::process::Command::new(brfed_bin());
    cmd.args(args);
    if std::env::var("BRFED_SCHEDULE_TICK_FUNCTION_ARN").is_err() {
        cmd.env("BRFED_SCHEDULE_TICK_FUNCTION_ARN", TICK_FN);
    }
    cmd.env("BRFED_SAFETY_NET_QUEUE_ARN", safety_net_queue());
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().await.expect("run brfed");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The world's safety-net queue (`BRFED_SAFETY_NET_QUEUE_ARN`, `brfed-events-dlq`).
fn safety_net_queue() -> String {
    std::env::var("BRFED_SAFETY_NET_QUEUE_ARN")
        .unwrap_or_else(|_| "arn:aws:sqs:us-west-2:123456789012:brfed-events-dlq".into())
}

async fn brfed(args: &[&str]) -> Run {
    brfed_with(args, &[]).await
}

/// A fresh directory for one test's files.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("brfed-cli-tests").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, file: &str, text: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn clusters_yaml(planes: &[String], tc: &str, ns: &str, az: bool) -> String {
    planes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let az = if az {
                format!(", azName: us-west-2{}", ['a', 'b', 'c', 'd'][i % 4])
            } else {
                String::new()
            };
            format!("  - {{k8sClusterName: {p}, tcName: {tc}, tcNamespace: {ns}{az}}}\n")
        })
        .collect()
}

fn backup_yaml(name: &str, clusters: &str, bucket: &str, prefix: &str) -> String {
    format!(
        "apiVersion: federation.pingcap.com/v1alpha1
kind: VolumeBackup
metadata:
  name: {name}
  namespace: br
  annotations:
    iam.amazonaws.com/role: arn:aws:iam::123456789012:role/tidb-backup
spec:
  clusters:
{clusters}  template:
    br:
      sendCredToTikv: false
    s3:
      provider: aws
      region: us-west-2
      bucket: {bucket}
      prefix: {prefix}
    toolImage: pingcap/br:v7.5.1
    cleanPolicy: Delete
"
    )
}

fn restore_yaml(name: &str, backup: &str, clusters: &str) -> String {
    format!(
        "apiVersion: federation.pingcap.com/v1alpha1
kind: VolumeRestore
metadata:
  name: {name}
  namespace: br
fromBackup:
  namespace: br
  name: {backup}
spec:
  clusters:
{clusters}  template:
    br:
      sendCredToTikv: false
    toolImage: pingcap/br:v7.5.1
"
    )
}

/// A TidbCluster seeded in the world's data planes (`stores` TiKV a plane) and a `VolumeBackup`
/// of it named `{name_prefix}-{id}`, written as `vbk.yaml` in its own work dir.
struct CliCase {
    name: String,
    ns: String,
    planes: Vec<String>,
    dir: PathBuf,
    vbk: String,
}

impl CliCase {
    async fn new(world: &World, prefix: &str, name_prefix: &str, stores: usize) -> Self {
        let tc = SeededCluster::seed(world, prefix, "tidb", stores)
            .await
            .expect("seed");
        let name = format!("{name_prefix}-{}", tc.id());
        let SeededCluster { ns, planes, .. } = tc;
        let dir = workdir(&ns);
        let vbk = write(
            &dir,
            "vbk.yaml",
            &backup_yaml(
                &name,
                &clusters_yaml(&planes, "basic", &ns, false),
                &world.bucket,
                &format!("{ns}/backup"),
            ),
        );
        Self {
            name,
            ns,
            planes,
            dir,
            vbk,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_made_with_the_cli_reads_back_like_kubectl_restores_by_name_and_is_deleted() {
    let world = World::from_env().await;
    let CliCase {
        name,
        ns,
        planes,
        dir,
        vbk,
    } = CliCase::new(&world, "clib", "cb", 2).await;

    // create --wait: the describe view of a Complete backup
    let created = brfed(&["backup", "create", "-f", &vbk, "--wait", "--timeout", "240"]).await;
    created.ok();
    assert!(
        created.stdout.contains("Status:") && created.stdout.contains("Complete"),
        "{created:#?}"
    );

    // get: the printer columns of `kubectl get vbk`
    let got = brfed(&["backup", "get", &name, "-n", "br"]).await;
    let rows = got.ok().rows();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "STATUS",
            "BACKUPSIZE",
            "COMMITTS",
            "TIMETAKEN",
            "AGE"
        ]
    );
    assert_eq!(rows[1][..2], [name.clone(), "Complete".into()], "{got:#?}");
    let doc = brfed(&["backup", "get", &name, "-n", "br", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(doc["status"]["phase"], "Complete");
    let commit_ts = doc["status"]["commitTs"]
        .as_str()
        .expect("commitTs")
        .to_string();
    assert_eq!(
        catalog_doc(&world, "br", &name).await.unwrap()["status"]["commitTs"],
        commit_ts.as_str(),
        "the document is the catalog's"
    );
    assert!(rows[1].contains(&commit_ts), "COMMITTS column: {got:#?}");

    // list, -A -o wide, -o yaml
    let listed = brfed(&["backup", "list", "-n", "br"]).await;
    assert!(
        listed.ok().rows().iter().any(|r| r[0] == name),
        "{listed:#?}"
    );
    let wide = brfed(&["backup", "list", "-A", "-o", "wide"]).await;
    let rows = wide.ok().rows();
    assert_eq!(rows[0][0], "NAMESPACE");
    assert!(rows[0].ends_with(&["CLUSTERS".into(), "EXECUTION".into()]));
    let row = rows
        .iter()
        .find(|r| r.get(1) == Some(&name))
        .unwrap_or_else(|| panic!("{name} not listed: {wide:#?}"));
    assert_eq!(row[0], "br");
    assert!(row.contains(&planes.join(",")), "{row:?}");
    let yaml: Value = serde_saphyr::from_str(
        &brfed(&["backup", "list", "-n", "br", "-o", "yaml"])
            .await
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(yaml["kind"], "List");
    assert!(
        yaml["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["metadata"]["name"] == name.as_str())
    );

    // describe: members, conditions, the pause window; and as JSON
    let described = brfed(&["backup", "describe", &name, "-n", "br"]).await;
    described.ok();
    for needle in [
        "Members:",
        &format!("fed-{name}"),
        "Conditions:",
        "SnapshotsCreated",
        "GC Pause:",
        "Resume Requested:",
        "(requested -> resume requested)",
        &commit_ts,
        "iam.amazonaws.com/role=arn:aws:iam::123456789012:role/tidb-backup",
    ] {
        assert!(
            described.stdout.contains(needle),
            "{needle}: {described:#?}"
        );
    }
    for p in &planes {
        assert!(
            described
                .stdout
                .contains(&format!("s3://{}/{ns}/backup-{p}", world.bucket)),
            "{p}: {described:#?}"
        );
    }
    let d = brfed(&["backup", "describe", &name, "-n", "br", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(d["brfed"]["resumeRequestedAt"].is_string(), "{d}");

    // the same name again: refused by name, nothing new
    let again = brfed(&["backup", "create", "-f", &vbk]).await;
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(again.stderr.contains("BackupExists"), "{again:#?}");

    // restore from it by name, into recovery-mode TidbClusters of the same layout
    let target = format!("{ns}-rt");
    seed_restore_target(
        &world.kubeconfig,
        &planes,
        &TidbClusterSeed::new(&target, "basic", &target).stores_per_plane(2),
    )
    .await
    .expect("seed restore target");
    let rname = format!("cr-{}", &ns[ns.len() - 8..]);
    let vrt = write(
        &dir,
        "vrt.yaml",
        &restore_yaml(
            &rname,
            &name,
            &clusters_yaml(&planes, "basic", &target, true),
        ),
    );
    let restored = brfed(&[
        "restore",
        "create",
        "-f",
        &vrt,
        "--wait",
        "--timeout",
        "240",
    ])
    .await;
    restored.ok();
    assert!(restored.stdout.contains("Complete"), "{restored:#?}");
    let r = brfed(&["restore", "get", &rname, "-n", "br", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(r["status"]["phase"], "Complete");
    assert_eq!(
        r["status"]["commitTs"],
        commit_ts.as_str(),
        "restored to the backup's commitTs"
    );
    let rows = brfed(&["restore", "list", "-n", "br"]).await.ok().rows();
    assert_eq!(rows[0], ["NAME", "STATUS", "COMMITTS", "TIMETAKEN", "AGE"]);
    assert!(rows.iter().any(|r| r[0] == rname && r[1] == "Complete"));
    let rd = brfed(&["restore", "describe", &rname, "-n", "br"]).await;
    for needle in [
        "From Backup:",
        &format!("br/{name}"),
        "RestoreVolume",
        "Restore Data On:",
    ] {
        assert!(rd.ok().stdout.contains(needle), "{needle}: {rd:#?}");
    }

    // delete --wait: Cleaned, every snapshot gone, the catalog document too
    let deleted = brfed(&[
        "backup",
        "delete",
        &name,
        "-n",
        "br",
        "--wait",
        "--timeout",
        "240",
    ])
    .await;
    deleted.ok();
    assert!(deleted.stdout.contains("Cleaned"), "{deleted:#?}");
    let snapshots_deleted = deleted
        .stdout
        .lines()
        .find(|l| l.starts_with("Snapshots Deleted:"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<usize>().ok());
    assert_eq!(snapshots_deleted, Some(planes.len() * 2), "{deleted:#?}");
    assert!(catalog_doc(&world, "br", &name).await.is_none());
    let gone = brfed(&["backup", "get", &name, "-n", "br"]).await;
    assert_eq!(gone.code, 1, "{gone:#?}");
    assert!(gone.stderr.contains("BackupNotFound"), "{gone:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_are_applied_paused_resumed_and_deleted_with_their_eventbridge_rules() {
    let world = World::from_env().await;
    let ns = unique("clis");
    let name = format!("cs{}", &ns[ns.len() - 8..]);
    let planes = world.plane_names(3);
    let dir = workdir(&ns);
    // Once a year: the rule never fires during the test.
    let schedule = |cron: &str| {
        format!(
            "apiVersion: federation.pingcap.com/v1alpha1
kind: VolumeBackupSchedule
metadata:
  name: {name}
  namespace: br
spec:
  schedule: \"{cron}\"
  maxBackups: 3
  backupTemplate:
    clusters:
{}    template:
      br: {{sendCredToTikv: false}}
      s3: {{provider: aws, region: us-west-2, bucket: {}, prefix: {ns}/sched}}
      cleanPolicy: Delete
",
            clusters_yaml(&planes, "basic", &ns, false).replace("  - ", "    - "),
            world.bucket
        )
    };
    let file = write(&dir, "vbks.yaml", &schedule("0 0 1 1 *"));
    let sdk = aws_config::load_from_env().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let rule = brfed_core::schedule::spec::rule_name("br", &name);
    let state = |events: aws_sdk_eventbridge::Client, rule: String| async move {
        events
            .describe_rule()
            .name(&rule)
            .send()
            .await
            .map(|r| {
                (
                    r.state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    r.schedule_expression().unwrap_or_default().to_string(),
                )
            })
            .ok()
    };

    let applied = brfed(&["schedule", "apply", "-f", &file]).await;
    assert!(applied.ok().stdout.contains(&rule), "{applied:#?}");
    assert_eq!(
        state(events.clone(), rule.clone()).await,
        Some(("ENABLED".into(), "cron(0 0 1 1 ? *)".into()))
    );
    // The rule's target: retried by EventBridge, then kept in the safety-net queue.
    let targets = events
        .list_targets_by_rule()
        .rule(&rule)
        .send()
        .await
        .unwrap();
    let target = &targets.targets()[0];
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(safety_net_queue().as_str()),
        "{target:?}"
    );
    assert_eq!(
        target
            .retry_policy()
            .and_then(|r| r.maximum_retry_attempts()),
        Some(185),
        "{target:?}"
    );
    // Without the queue, apply is refused by name before anything is written.
    let refused = brfed_with(
        &["schedule", "apply", "-f", &file],
        &[("BRFED_SAFETY_NET_QUEUE_ARN", None)],
    )
    .await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused.stderr.contains("BRFED_SAFETY_NET_QUEUE_ARN"),
        "{refused:#?}"
    );
    let rows = brfed(&["schedule", "list", "-n", "br"]).await.ok().rows();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "SCHEDULE",
            "MAXBACKUPS",
            "MAXRESERVEDTIME",
            "PAUSED",
            "LASTBACKUP",
            "LASTBACKUPTIME",
            "AGE"
        ]
    );
    let row = rows.iter().find(|r| r[0] == name).expect("listed");
    assert_eq!(row[1..7], ["0", "0", "1", "1", "*", "3"], "{row:?}");
    assert!(row.contains(&"false".to_string()), "{row:?}");
    let wide = brfed(&["schedule", "get", &name, "-n", "br", "-o", "wide"]).await;
    assert!(wide.ok().stdout.contains("cron(0 0 1 1 ? *)"), "{wide:#?}");

    let paused = brfed(&["schedule", "pause", &name, "-n", "br"]).await;
    assert!(paused.ok().stdout.contains("paused"), "{paused:#?}");
    assert_eq!(
        state(events.clone(), rule.clone()).await.unwrap().0,
        "DISABLED"
    );
    let doc = brfed(&["schedule", "get", &name, "-n", "br", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(doc["spec"]["pause"], true);
    assert_eq!(doc["brfed"]["rule"], rule.as_str());
    brfed(&["schedule", "resume", &name, "-n", "br"]).await.ok();
    assert_eq!(
        state(events.clone(), rule.clone()).await.unwrap().0,
        "ENABLED"
    );

    // applying a changed file updates the rule
    let file2 = write(&dir, "vbks2.yaml", &schedule("30 2 1 1 *"));
    brfed(&["schedule", "apply", "-f", &file2]).await.ok();
    assert_eq!(
        state(events.clone(), rule.clone()).await.unwrap().1,
        "cron(30 2 1 1 ? *)"
    );

    // an invalid schedule is refused before anything is written
    let bad = write(
        &dir,
        "bad.yaml",
        &schedule("61 * * * *").replace(&format!("name: {name}"), &format!("name: {name}x")),
    );
    let refused = brfed(&["schedule", "apply", "-f", &bad]).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(refused.stderr.contains("InvalidSpec"), "{refused:#?}");
    assert!(
        state(
            events.clone(),
            brfed_core::schedule::spec::rule_name("br", &format!("{name}x"))
        )
        .await
        .is_none(),
        "no rule for the refused schedule"
    );

    let deleted = brfed(&["schedule", "delete", &name, "-n", "br"]).await;
    assert!(deleted.ok().stdout.contains("deleted"), "{deleted:#?}");
    assert!(
        state(events.clone(), rule.clone()).await.is_none(),
        "rule gone"
    );
    let gone = brfed(&["schedule", "get", &name, "-n", "br"]).await;
    assert_eq!(gone.code, 1, "{gone:#?}");
    assert!(gone.stderr.contains("ScheduleNotFound"), "{gone:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_reports_every_problem_at_once_and_creates_nothing() {
    let world = World::from_env().await;
    // a good one (at a fresh prefix) passes
    let CliCase {
        name,
        ns,
        planes,
        dir,
        vbk: good,
    } = CliCase::new(&world, "clip", "cp", 1).await;
    let passed = brfed(&["preflight", "-f", &good]).await;
    assert!(
        passed.ok().stdout.contains("preflight passed"),
        "{passed:#?}"
    );
    // with locations of the stack that do not hold it (`--backup-locations`, else the variable,
    // else the stack's output), it is refused by that name, as its start would refuse it
    let elsewhere = "brfed-second-backups/tidb/";
    let refused = brfed(&["preflight", "-f", &good, "--backup-locations", elsewhere]).await;
    assert_eq!(refused.code, 1, "{refused:#?}");
    for needle in [
        "BucketNotAllowed",
        &format!("`{}`", world.bucket),
        "s3://brfed-second-backups/tidb/",
    ] {
        assert!(refused.stdout.contains(needle), "{needle}: {refused:#?}");
    }
    let unreadable = brfed(&["preflight", "-f", &good, "--backup-locations", "no-folder"]).await;
    assert_eq!(unreadable.code, 2, "{unreadable:#?}");
    assert!(
        unreadable.stderr.contains("--backup-locations"),
        "{unreadable:#?}"
    );

    // three problems at once: a used prefix (planes[0]), a TidbCluster that does not exist
    // (planes[1]), a data plane that is not one
    let prefix = format!("{ns}/used");
    world
        .cloud
        .put(
            &world.bucket,
            &format!("{prefix}-{}/clustermeta", planes[0]),
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    let clusters = format!(
        "  - {{k8sClusterName: {}, tcName: basic, tcNamespace: {ns}}}\n  - {{k8sClusterName: {}, tcName: missing, tcNamespace: {ns}}}\n  - {{k8sClusterName: nope, tcName: basic, tcNamespace: {ns}}}\n",
        planes[0], planes[1]
    );
    let bad = write(
        &dir,
        "bad.yaml",
        &backup_yaml(&name, &clusters, &world.bucket, &prefix),
    );
    let found = brfed(&["preflight", "-f", &bad]).await;
    assert_eq!(found.code, 1, "{found:#?}");
    for needle in [
        "UnknownCluster",
        "`nope` is not a known data plane",
        "TidbClusterInvalid",
        &format!("{ns}/missing does not exist in {}", planes[1]),
        "S3PrefixInUse",
        &format!("{prefix}-{}/clustermeta", planes[0]),
    ] {
        assert!(found.stdout.contains(needle), "{needle}: {found:#?}");
    }
    assert!(found.stderr.contains("PreflightFailed"), "{found:#?}");
    let report = brfed(&["preflight", "-f", &bad, "-o", "json"]).await.json();
    assert_eq!(report["ok"], false);
    let names: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["error"].as_str())
        .collect();
    for n in ["UnknownCluster", "TidbClusterInvalid", "S3PrefixInUse"] {
        assert!(names.contains(&n), "{n} missing from {report}");
    }

    // nothing was created: no catalog document, no member, no execution
    assert!(catalog_doc(&world, "br", &name).await.is_none());
    for p in &planes[..2] {
        let member = world
            .backups(p, &ns)
            .get_opt(&format!("fed-{name}"))
            .await
            .unwrap();
        assert!(member.is_none(), "{p}: a member was created");
    }
    let sdk = aws_config::load_from_env().await;
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let described = sfn
        .describe_execution()
        .execution_arn(execution_arn(
            &state_machine("volume-backup"),
            &brfed_core::names::execution_name("br", &name),
        ))
        .send()
        .await;
    assert!(
        described.is_err(),
        "an execution was started: {described:?}"
    );

    // a VolumeRestore too: a backup that does not exist, targets not in recovery mode
    let vrt = write(
        &dir,
        "vrt.yaml",
        &restore_yaml(
            &format!("r{name}"),
            "no-such-backup",
            &clusters_yaml(&planes, "basic", &ns, true),
        ),
    );
    let found = brfed(&["preflight", "-f", &vrt]).await;
    assert_eq!(found.code, 1, "{found:#?}");
    for needle in [
        "BackupNotRestorable",
        "no-such-backup",
        "TidbClusterInvalid",
        "recoveryMode",
    ] {
        assert!(found.stdout.contains(needle), "{needle}: {found:#?}");
    }

    // an invalid file is bad input
    let invalid = write(
        &dir,
        "invalid.yaml",
        "metadata: {name: x}\nspec: {clusters: []}\n",
    );
    let refused = brfed(&["preflight", "-f", &invalid]).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(refused.stderr.contains("InvalidSpec"), "{refused:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_status_2_before_any_call() {
    let dir = workdir(&unique("clibad"));
    // Any call would fail (exit 1): status 2 proves the refusal came first.
    let offline = [("AWS_ENDPOINT_URL", Some("http://127.0.0.1:9"))];

    let missing = brfed_with(
        &["backup", "create", "-f", "/nonexistent/vbk.yaml"],
        &offline,
    )
    .await;
    assert_eq!(missing.code, 2, "{missing:#?}");
    assert!(
        missing.stderr.contains("FileUnreadable")
            && missing.stderr.contains("/nonexistent/vbk.yaml"),
        "{missing:#?}"
    );

    let broken = write(&dir, "broken.yaml", "metadata: {name: x\nspec: [\n");
    let r = brfed_with(&["backup", "create", "-f", &broken], &offline).await;
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("InvalidSpec") && r.stderr.contains("not YAML or JSON"),
        "{r:#?}"
    );

    let invalid = write(
        &dir,
        "invalid.yaml",
        "metadata: {name: x}\nspec: {clusters: [], template: {cleanPolicy: Sometimes}}\n",
    );
    let r = brfed_with(&["backup", "create", "-f", &invalid], &offline).await;
    assert_eq!(r.code, 2, "{r:#?}");
    for needle in ["InvalidSpec", "spec.clusters is empty", "cleanPolicy"] {
        assert!(r.stderr.contains(needle), "{needle}: {r:#?}");
    }
    let r = brfed_with(&["restore", "create", "-f", &invalid], &offline).await;
    assert_eq!(r.code, 2, "{r:#?}");

    let valid = write(
        &dir,
        "vbk.yaml",
        &backup_yaml(
            "x",
            "  - {k8sClusterName: dp1, tcName: basic, tcNamespace: tidb}\n",
            "bkt",
            "p",
        ),
    );
    let r = brfed_with(
        &["backup", "create", "-f", &valid],
        &[
            ("AWS_ENDPOINT_URL", Some("http://127.0.0.1:9")),
            ("BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN", None),
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{r:#?}");
    for needle in [
        "Configuration",
        "BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN",
        "VolumeBackupStateMachineArn",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {r:#?}");
    }

    let r = brfed(&["backup", "get"]).await;
    assert_eq!(r.code, 2, "{r:#?}");
    let r = brfed(&["backup", "list", "-o", "xml"]).await;
    assert_eq!(r.code, 2, "{r:#?}");
    let help = brfed(&["--help"]).await;
    assert_eq!(help.code, 0);
    for needle in [
        "backup",
        "restore",
        "schedule",
        "preflight",
        "ScheduleTickFunctionArn",
    ] {
        assert!(help.stdout.contains(needle), "{needle}: {help:#?}");
    }
    for group in ["backup", "restore", "schedule"] {
        let h = brfed(&[group, "--help"]).await;
        assert_eq!(h.code, 0, "{h:#?}");
        assert!(
            h.stdout.contains("list") && h.stdout.contains("get"),
            "{h:#?}"
        );
    }
}

/// The variables of the settings `--stack` can give (`brfed --help`), and `BRFED_STACK` itself.
const SETTINGS_ENV: &[&str] = &[
    "BRFED_CATALOG_BUCKET",
    "BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN",
    "BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN",
    "BRFED_VOLUME_BACKUP_DELETE_STATE_MACHINE_ARN",
    "BRFED_RESTORE_DELETE_FUNCTION_ARN",
    "BRFED_SCHEDULE_TICK_FUNCTION_ARN",
    "BRFED_SAFETY_NET_QUEUE_ARN",
    "BRFED_STACK",
];

/// `brfed --stack brfed`: with none of the BRFED_* settings in its environment, the CLI takes
/// them from the outputs of the world's CloudFormation stack `brfed` (deploy.py: the Outputs of
/// infra/aws/template.yaml with the world's values): the catalog bucket (backup and schedule
/// lists read the world's catalog), the schedule-tick function and the safety-net queue (the
/// target and dead-letter queue of the rule `schedule apply` makes). A variable still wins over
/// the stack; a stack that does not exist is `StackNotFound`.
#[tokio::test(flavor = "multi_thread")]
async fn the_stack_s_outputs_stand_for_the_brfed_variables() {
    let world = World::from_env().await;
    let ns = unique("clistack");
    let name = format!("st{}", &ns[ns.len() - 8..]);
    let planes = world.plane_names(3);
    let dir = workdir(&ns);
    let unset: Vec<(&str, Option<&str>)> = SETTINGS_ENV.iter().map(|k| (*k, None)).collect();
    let with = |extra: &[(&'static str, Option<&'static str>)]| {
        let mut env = unset.clone();
        env.extend_from_slice(extra);
        env
    };

    // Without the stack the variables are really gone: a named error, status 2.
    let bare = brfed_with(&["backup", "list", "-n", &ns], &unset).await;
    assert_eq!(bare.code, 2, "{bare:#?}");
    assert!(
        bare.stderr.contains("Configuration") && bare.stderr.contains("--stack"),
        "{bare:#?}"
    );

    // The issue's line: `brfed --stack brfed backup list`.
    let listed = brfed_with(&["--stack", "brfed", "backup", "list"], &unset).await;
    listed.ok();
    let listed = brfed_with(&["--stack", "brfed", "backup", "list", "-n", &ns], &unset).await;
    // (kubectl's note for an empty list, on stderr)
    assert_eq!(
        listed.ok().stderr.trim(),
        format!("No resources found in {ns} namespace.")
    );

    // A schedule applied through the stack: its rule targets the stack's tick function, with the
    // stack's safety-net queue; it is in the world's catalog (listed with the variables too).
    let file = write(
        &dir,
        "vbks.yaml",
        &format!(
            "apiVersion: federation.pingcap.com/v1alpha1
kind: VolumeBackupSchedule
metadata:
  name: {name}
  namespace: {ns}
spec:
  schedule: \"0 0 1 1 *\"
  maxBackups: 1
  backupTemplate:
    clusters:
{}    template:
      br: {{sendCredToTikv: false}}
      s3: {{provider: aws, region: us-west-2, bucket: {}, prefix: {ns}/sched}}
",
            clusters_yaml(&planes, "basic", &ns, false).replace("  - ", "    - "),
            world.bucket
        ),
    );
    let applied = brfed_with(
        &["schedule", "apply", "-f", &file],
        &with(&[("BRFED_STACK", Some("brfed"))]),
    )
    .await;
    applied.ok();
    let rule = brfed_core::schedule::spec::rule_name(&ns, &name);
    let sdk = aws_config::load_from_env().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let targets = events
        .list_targets_by_rule()
        .rule(&rule)
        .send()
        .await
        .unwrap();
    let target = &targets.targets()[0];
    assert_eq!(target.arn(), TICK_FN, "{target:?}");
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(safety_net_queue().as_str()),
        "{target:?}"
    );
    let by_stack = brfed_with(
        &[
            "--stack", "brfed", "schedule", "list", "-n", &ns, "-o", "json",
        ],
        &unset,
    )
    .await;
    let by_env = brfed(&["schedule", "list", "-n", &ns, "-o", "json"]).await;
    assert_eq!(by_stack.ok().json(), by_env.ok().json());
    assert!(by_stack.stdout.contains(&name), "{by_stack:#?}");

    // A variable wins over the stack's output: here a bucket that does not exist.
    let env_wins = brfed_with(
        &["--stack", "brfed", "schedule", "list", "-n", &ns],
        &with(&[("BRFED_CATALOG_BUCKET", Some("brfed-no-such-catalog"))]),
    )
    .await;
    assert_eq!(env_wins.code, 1, "{env_wins:#?}");
    // ... and a flag over the variable.
    let catalog = std::env::var("BRFED_CATALOG_BUCKET").expect("the world's BRFED_CATALOG_BUCKET");
    let flag_wins = brfed_with(
        &[
            "--stack",
            "brfed",
            "schedule",
            "list",
            "-n",
            &ns,
            "--catalog-bucket",
            &catalog,
        ],
        &with(&[("BRFED_CATALOG_BUCKET", Some("brfed-no-such-catalog"))]),
    )
    .await;
    assert!(flag_wins.ok().stdout.contains(&name), "{flag_wins:#?}");

    // A stack that is not there: named, status 2, before any other call.
    let missing = brfed_with(&["--stack", "brfed-nope", "backup", "list"], &unset).await;
    assert_eq!(missing.code, 2, "{missing:#?}");
    assert!(
        missing.stderr.contains("StackNotFound") && missing.stderr.contains("brfed-nope"),
        "{missing:#?}"
    );

    let deleted = brfed_with(
        &["--stack", "brfed", "schedule", "delete", &name, "-n", &ns],
        &unset,
    )
    .await;
    assert!(deleted.ok().stdout.contains("deleted"), "{deleted:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_deleted_with_the_cli_frees_its_name_and_leaves_what_it_restored() {
    let world = World::from_env().await;
    let CliCase {
        name,
        ns,
        planes,
        dir,
        vbk,
    } = CliCase::new(&world, "clid", "cd", 2).await;
    brfed(&["backup", "create", "-f", &vbk, "--wait", "--timeout", "240"])
        .await
        .ok();
    let target = format!("{ns}-rt");
    let seed_target = || async {
        seed_restore_target(
            &world.kubeconfig,
            &planes,
            &TidbClusterSeed::new(&target, "basic", &target).stores_per_plane(2),
        )
        .await
        .expect("seed restore target")
    };
    seed_target().await;
    let rname = format!("cd-{}", &ns[ns.len() - 8..]);
    let vrt = write(
        &dir,
        "vrt.yaml",
        &restore_yaml(
            &rname,
            &name,
            &clusters_yaml(&planes, "basic", &target, true),
        ),
    );
    let create = [
        "restore",
        "create",
        "-f",
        &vrt,
        "--wait",
        "--timeout",
        "240",
    ];
    brfed(&create).await.ok();
    let volumes = world.target_volumes(&target).await;
    assert_eq!(volumes.len(), planes.len() * 2, "two TiKV stores a plane");

    // a running restore cannot be deleted is the core's test; here one that ended is
    let deleted = brfed(&["restore", "delete", &rname, "-n", "br"]).await;
    deleted.ok();
    for needle in [
        "Result:",
        "Deleted",
        &format!("fed-{rname}"),
        &format!("br.{rname}_2"),
    ] {
        assert!(deleted.stdout.contains(needle), "{needle}: {deleted:#?}");
    }
    for p in &planes {
        let member = world
            .restores(p, &target)
            .get_opt(&format!("fed-{rname}"))
            .await
            .unwrap();
        assert!(member.is_none(), "{p}: the member Restore is gone");
        let tc = world
            .tidbclusters(p, &target)
            .get_opt("basic")
            .await
            .unwrap();
        assert!(tc.is_some(), "{p}: the restored TidbCluster stays");
    }
    let gone = brfed(&["restore", "get", &rname, "-n", "br"]).await;
    assert_eq!(gone.code, 1, "{gone:#?}");
    assert!(gone.stderr.contains("RestoreNotFound"), "{gone:#?}");
    assert_eq!(
        world.target_volumes(&target).await,
        volumes,
        "the restored volumes are the restored TiKV: never deleted"
    );

    // again: nothing to do, said so
    let again = brfed(&["restore", "delete", &rname, "-n", "br", "-o", "json"]).await;
    assert_eq!(again.ok().json()["result"], "AlreadyDeleted", "{again:#?}");

    // the name again, into the same TidbClusters back in recovery mode: Complete, under the
    // name's second execution name
    seed_target().await;
    let recreated = brfed(&create).await;
    recreated.ok();
    assert!(recreated.stdout.contains("Complete"), "{recreated:#?}");
    let r = brfed(&["restore", "get", &rname, "-n", "br", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(r["status"]["phase"], "Complete");
    let execution = r["brfed"]["execution"].as_str().unwrap_or_default();
    assert!(
        execution.ends_with(&format!(":br.{rname}_2")),
        "{execution}"
    );
    // a repeated create of that restore is refused by name and starts nothing
    let twice = brfed(&["restore", "create", "-f", &vrt]).await;
    assert_eq!(twice.code, 1, "{twice:#?}");
    assert!(twice.stderr.contains("RestoreExists"), "{twice:#?}");
    brfed(&["restore", "delete", &rname, "-n", "br"]).await.ok();
}
