//! The examples of `docs/aws-cli.md`, run as they are written: every fenced `sh` block whose
//! first line is `# test: <name>` runs with `bash -euo pipefail` in one working directory, in the
//! order of the document, with the world's environment and the variables the document uses
//! (`NS`, `NAME`, `BUCKET`, `TC_NS`, ...) set to a freshly seeded TiDB cluster. Each block must
//! succeed and print what the document says it prints, so the document cannot drift from brfed.

use brfed_adapters::{EventBridgeRules, SchedulerRuntime};
use brfed_core::schedule;
use brfed_core::schedule::spec::ScheduleRequest;
use brfed_sim_operator::seed::{TidbClusterSeed, seed_restore_target};
use brfed_system_tests::dataplane::World;
use brfed_system_tests::fixtures::{SeededCluster, VolumeBackup, backup_clusters};
use brfed_system_tests::workflow::{Workflows, state_machine};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/aws-cli.md");
const TICK_FN: &str = "arn:aws:lambda:us-west-2:123456789012:function:schedule-tick";
const RESTORE_DELETE_FN: &str = "arn:aws:lambda:us-west-2:123456789012:function:restore-delete";

/// The tagged `sh` blocks of a Markdown text, in order: (name, body).
fn tagged_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() != "```sh" {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| l.trim_end() != "```")
            .collect();
        if let Some(name) = body
            .first()
            .and_then(|first| first.trim().strip_prefix("# test:"))
        {
            out.push((name.trim().to_string(), body[1..].join("\n") + "\n"));
        }
    }
    out
}

struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

fn run_block(dir: &Path, vars: &[(&str, String)], body: &str) -> Ran {
    let mut cmd = Command::new("timeout");
    cmd.args(["300", "bash", "-euo", "pipefail", "-c", body])
        .current_dir(dir);
    if std::env::var("BRFED_SCHEDULE_TICK_FUNCTION_ARN").is_err() {
        cmd.env("BRFED_SCHEDULE_TICK_FUNCTION_ARN", TICK_FN);
    }
    if std::env::var("BRFED_RESTORE_DELETE_FUNCTION_ARN").is_err() {
        cmd.env("BRFED_RESTORE_DELETE_FUNCTION_ARN", RESTORE_DELETE_FN);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("bash and timeout");
    Ran {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_document_has_the_tagged_examples_in_order() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let names: Vec<String> = tagged_blocks(&doc).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, EXPECTED_BLOCKS, "docs/aws-cli.md's tagged examples");
}

const EXPECTED_BLOCKS: [&str; 15] = [
    "write-volumebackup",
    "convert",
    "start-backup",
    "watch",
    "history",
    "catalog",
    "restore-from-backup",
    "restore-from-prefixes",
    "delete-restore",
    "recreate-restore",
    "stop",
    "delete",
    "list-rules",
    "fire-tick",
    "retention-sweep",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_aws_cli_example_runs_as_documented() {
    let world = World::from_env().await;
    let flows = Workflows::from_env().await;
    let planes = world.plane_names(3);
    assert_eq!(planes, ["dp1", "dp2", "dp3"], "the document's data planes");
    let tc = SeededCluster::seed(&world, "awscli", "tidb", 2)
        .await
        .expect("seed");
    let id = tc.id().to_string();
    let tc_ns = tc.ns;
    let target_ns = format!("{tc_ns}-rt");
    let target2_ns = format!("{tc_ns}-rp");
    // the TidbClusters the deleted restore's name restores into again
    let target3_ns = format!("{tc_ns}-r3");
    for target in [&target_ns, &target2_ns, &target3_ns] {
        seed_restore_target(
            &world.kubeconfig,
            &planes,
            &TidbClusterSeed::new(target, "basic", target).stores_per_plane(2),
        )
        .await
        .expect("seed restore target");
    }
    let bucket = std::env::var("BRFED_CATALOG_BUCKET").unwrap_or_else(|_| world.bucket.clone());
    let name = format!("cx-{id}");
    let restore = format!("rcx-{id}");
    let schedule = format!("sx{id}");

    // the schedule the document's schedule examples look at: what `brfed schedule apply` does
    let sdk = aws_config::load_from_env().await;
    let sched = SchedulerRuntime::from_parts(
        &sdk,
        bucket.clone(),
        state_machine("volume-backup"),
        state_machine("volume-backup-delete"),
    )
    .unwrap();
    let rules = EventBridgeRules::new(&sdk);
    let template = VolumeBackup::written(
        "",
        backup_clusters(&planes, "basic", &tc_ns),
        &world.bucket,
        &format!("{tc_ns}/sched"),
        "Delete",
    )
    .spec();
    let req = ScheduleRequest::from_value(json!({
        "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackupSchedule",
        "metadata": {"name": schedule, "namespace": "br"},
        "spec": {"schedule": "0 0 1 1 *", "maxBackups": 3, "backupTemplate": template}}))
    .unwrap();
    let tick_fn =
        std::env::var("BRFED_SCHEDULE_TICK_FUNCTION_ARN").unwrap_or_else(|_| TICK_FN.into());
    schedule::steps::apply(&sched.env(), &rules, &tick_fn, &req, None)
        .await
        .expect("apply the schedule");

    let vars = [
        ("NS", "br".to_string()),
        ("NAME", name.clone()),
        ("BUCKET", bucket.clone()),
        ("TC_NS", tc_ns.clone()),
        ("RESTORE", restore.clone()),
        ("TARGET_NS", target_ns.clone()),
        ("TARGET2_NS", target2_ns.clone()),
        ("TARGET3_NS", target3_ns.clone()),
        ("SCHEDULE", schedule.clone()),
    ];
    let expect: Vec<(&str, Vec<String>)> = vec![
        ("write-volumebackup", vec![]),
        ("convert", vec![format!("br.{name}\n")]),
        (
            "start-backup",
            vec![
                format!("execution:volume-backup:br.{name}"),
                "startDate".into(),
            ],
        ),
        ("watch", vec!["SUCCEEDED\tNone\tNone".into()]),
        (
            "history",
            vec![
                "Validate And Pause GC".into(),
                "Execute In All Clusters".into(),
                "Finalize".into(),
            ],
        ),
        (
            "catalog",
            vec![
                "phase Complete commitTs ".into(),
                format!("dp1 fed-{name} Complete s3://{bucket}/{tc_ns}/{name}-dp1"),
                format!("dp3 fed-{name} Complete s3://{bucket}/{tc_ns}/{name}-dp3"),
                format!("{name}.json"),
            ],
        ),
        (
            "restore-from-backup",
            vec![
                format!("execution:volume-restore:br.{restore}"),
                "SUCCEEDED".into(),
                "Complete ".into(),
            ],
        ),
        (
            "restore-from-prefixes",
            vec![
                format!("execution:volume-restore:br.{restore}-p"),
                "SUCCEEDED".into(),
            ],
        ),
        (
            "delete-restore",
            vec![
                "None".into(),
                format!("Deleted br.{restore}_2"),
                "not in the catalog any more".into(),
            ],
        ),
        (
            "recreate-restore",
            vec![
                format!("execution:volume-restore:br.{restore}_2"),
                "SUCCEEDED".into(),
                "Complete".into(),
            ],
        ),
        (
            "stop",
            vec![
                format!("execution:volume-backup:br.{name}-stop"),
                "ABORTED".into(),
                "Failed ExecutionAborted".into(),
            ],
        ),
        (
            "delete",
            vec![
                "SUCCEEDED".into(),
                "\"result\": \"Cleaned\"".into(),
                "not in the catalog any more".into(),
            ],
        ),
        (
            "list-rules",
            vec![
                format!("brfed-schedule-br.{schedule}\tcron(0 0 1 1 ? *)\tENABLED"),
                tick_fn.clone(),
                "\"time\"".into(),
            ],
        ),
        (
            "fire-tick",
            vec![
                "None".into(),
                format!("\"schedule\": \"br/{schedule}\""),
                "\"result\": \"started\"".into(),
                format!("\"backup\": \"{schedule}-"),
            ],
        ),
        (
            "retention-sweep",
            vec![
                "None".into(),
                "\"now\"".into(),
                format!("\"schedule\": \"br/{schedule}\""),
            ],
        ),
    ];

    let doc = std::fs::read_to_string(DOC).unwrap();
    let blocks = tagged_blocks(&doc);
    let dir = std::env::temp_dir().join(format!("aws-cli-{tc_ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ran_blocks = Vec::new();
    let mut failure = None;
    for (block, body) in &blocks {
        let Some((_, wanted)) = expect.iter().find(|(n, _)| n == block) else {
            failure = Some(format!("no expectation for the example `{block}`"));
            break;
        };
        let started = std::time::Instant::now();
        let ran = run_block(&dir, &vars, body);
        eprintln!(
            "--- {block} ({:.1?}, {})\n{}{}",
            started.elapsed(),
            ran.status,
            ran.stdout,
            ran.stderr
        );
        ran_blocks.push(block.as_str());
        if !ran.status.success() {
            failure = Some(format!(
                "example `{block}` failed ({}):\n{body}\n--- stdout\n{}--- stderr\n{}",
                ran.status, ran.stdout, ran.stderr
            ));
            break;
        }
        // `--output text` rows are tab-separated, as the expectations are written
        if let Some(w) = wanted.iter().find(|w| !ran.stdout.contains(w.as_str())) {
            failure = Some(format!(
                "example `{block}` did not print {w:?}:\n{}",
                ran.stdout
            ));
            break;
        }
    }
    if let Some(failure) = failure {
        // leave no schedule behind when an example failed
        let _ = schedule::steps::remove(&sched.env(), &rules, "br", &schedule).await;
        panic!("{failure}");
    }
    assert_eq!(ran_blocks, EXPECTED_BLOCKS);

    // the tick started a backup: let it end, then drop the schedule (its backups stay)
    let tick_backup = std::fs::read_to_string(dir.join("tick-out.json")).unwrap();
    let tick: serde_json::Value = serde_json::from_str(&tick_backup).unwrap();
    if let Some(arn) = tick["execution"].as_str() {
        let done = flows.wait(arn, Duration::from_secs(120)).await;
        assert_eq!(done.status, "SUCCEEDED", "the tick's backup: {done:?}");
    }
    schedule::steps::remove(&sched.env(), &rules, "br", &schedule)
        .await
        .expect("remove the schedule");
}

/// The execution-name one-liner of the `convert` example gives what brfed computes, also past
/// 80 characters (cut and hashed).
#[test]
fn the_documented_execution_name_is_brfeds() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let (_, body) = tagged_blocks(&doc)
        .into_iter()
        .find(|(n, _)| n == "convert")
        .expect("the convert example");
    let one_liner = body
        .lines()
        .find(|l| l.contains("hashlib"))
        .expect("the execution-name one-liner");
    let dir = std::env::temp_dir().join(format!("aws-cli-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (ns, name) in [
        ("br", "bk1".to_string()),
        (
            &"n".repeat(63) as &str,
            format!("{}-2026-01-01t00-00-00", "s".repeat(27)),
        ),
        ("team-a", "x".repeat(73)),
        ("team-a", "x".repeat(74)),
    ] {
        let vbk = json!({"metadata": {"name": name, "namespace": ns}});
        std::fs::write(dir.join("vbk.json"), vbk.to_string()).unwrap();
        let ran = run_block(&dir, &[], &format!("{one_liner}\n"));
        assert!(ran.status.success(), "{}", ran.stderr);
        assert_eq!(
            ran.stdout.trim_end(),
            brfed_core::names::execution_name(ns, &name),
            "{ns}/{name}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tagged_blocks_are_found_and_untagged_ones_skipped() {
    let md = "x\n```sh\n# test: a\necho 1\n```\n```sh\necho untagged\n```\n```json\n# test: no\n```\n```sh\n# test: b\necho 2\necho 3\n```\n";
    assert_eq!(
        tagged_blocks(md),
        vec![
            ("a".to_string(), "echo 1\n".to_string()),
            ("b".to_string(), "echo 2\necho 3\n".to_string())
        ]
    );
}
