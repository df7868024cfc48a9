//! The AWS side of the local world, and starting brfed the way users do: the emulator's Step
//! Functions runs an ASL whose Lambda task reaches our own binary; error names reach Catch; the
//! event pump delivers status changes and fires schedules; the AWS CLI starts a federated backup
//! from a `VolumeBackup` YAML.

use brfed_sim_operator::seed::{TidbClusterSeed, seed_restore_target};
use brfed_system_tests::dataplane::{World, unique};
use brfed_system_tests::workflow::{Finished, Workflows, emulator, state_machine};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// `tests/fixtures/{fixture}.yaml` with its placeholders filled in (`NAME`, `PREFIX`, and
/// `NAMESPACE` of `tcNamespace` when given), written into `dir` as `{stem}.yaml`, and the JSON a
/// user makes of it (see [`yaml_to_json`]).
fn fixture_json(
    dir: &Path,
    (fixture, stem): (&str, &str),
    name: &str,
    prefix: &str,
    tc_namespace: Option<&str>,
) -> PathBuf {
    let path = format!("{}/../fixtures/{fixture}.yaml", env!("CARGO_MANIFEST_DIR"));
    let mut yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("name: NAME", &format!("name: {name}"));
    if let Some(ns) = tc_namespace {
        yaml = yaml.replace("tcNamespace: NAMESPACE", &format!("tcNamespace: {ns}"));
    }
    let yaml = yaml.replace("prefix: PREFIX", &format!("prefix: {prefix}"));
    std::fs::write(dir.join(format!("{stem}.yaml")), yaml).unwrap();
    yaml_to_json(dir, stem)
}

/// Waits (2 min) for execution `arn`, which must succeed with a `Complete` document: the document.
async fn completed(flows: &Workflows, arn: &str) -> Value {
    let done = flows.wait(arn, Duration::from_secs(120)).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let doc = done.output.unwrap();
    assert_eq!(doc["status"]["phase"], "Complete");
    doc
}

/// `{stem}.yaml` of `dir` as `{stem}.json`, converted as a user does (PyYAML).
fn yaml_to_json(dir: &Path, stem: &str) -> PathBuf {
    let json_path = dir.join(format!("{stem}.json"));
    let conv = Command::new("python3")
        .args(["-c", "import sys,yaml,json; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2],'w'))"])
        .arg(dir.join(format!("{stem}.yaml")))
        .arg(&json_path)
        .status()
        .expect("python3 with PyYAML (the world's venv is on PATH)");
    assert!(conv.success());
    json_path
}

/// Runs the world's smoke state machine `stem` (execution `unique(prefix)`) with `input` to its
/// end (at most 30 s).
async fn smoke(flows: &Workflows, stem: &str, prefix: &str, input: Value) -> Finished {
    let (sm, name) = (state_machine(stem), unique(prefix));
    flows.run(&sm, &name, &input, Duration::from_secs(30)).await
}

/// [`aws_start`], which must succeed: the execution's ARN.
fn aws_started(state_machine: &str, name: &str, input: &Path) -> String {
    let out = aws_start(state_machine, name, input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    started["executionArn"].as_str().unwrap().to_string()
}

/// `aws stepfunctions start-execution` of `state_machine`, execution `name`, input file `input`.
fn aws_start(state_machine: &str, name: &str, input: &Path) -> Output {
    Command::new("aws")
        .args([
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            state_machine,
            "--name",
            name,
            "--input",
        ])
        .arg(format!("file://{}", input.display()))
        .output()
        .expect("the AWS CLI (the world's venv is on PATH)")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lambda_task_reaches_our_binary_and_its_error_names_reach_catch() {
    let flows = Workflows::from_env().await;
    let done = smoke(&flows, "smoke", "ok", json!({"x": 1})).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    assert_eq!(done.output.unwrap()["echoed"], true);
    let done = smoke(&flows, "smoke", "boom", json!({"fail": "BoomError"})).await;
    assert_eq!(done.status, "SUCCEEDED");
    let out = done.output.unwrap();
    assert_eq!(out["handled"], "BoomError was caught");
    assert_eq!(out["error"]["Error"], "BoomError");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_pump_delivers_status_changes_and_fires_schedules() {
    let flows = Workflows::from_env().await;
    let failed = smoke(&flows, "smoke-fail", "fail", json!({"fail": "Unhandled"})).await;
    assert_eq!(failed.status, "FAILED");
    let arn = failed.arn;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = emulator("GET", "/_brfed/deliveries?rule=smoke-fail-notify", None);
        let delivered = d["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["ok"] == true && x.to_string().contains(&arn));
        if delivered {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status change never delivered: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fired = emulator("POST", "/_brfed/rules/smoke-hourly/fire", None);
    let started = fired["deliveries"][0]["result"]["executionArn"]
        .as_str()
        .unwrap_or_else(|| panic!("fire started nothing: {fired}"));
    let done = flows.wait(started, Duration::from_secs(30)).await;
    assert_eq!(done.status, "SUCCEEDED");
    assert_eq!(
        done.output.unwrap()["x"],
        42,
        "the rule's target input reached the execution"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_starts_a_backup_from_the_originals_yaml() {
    let flows = Workflows::from_env().await;
    let name = unique("cli");
    let name = format!("cli-{}", &name[name.len() - 10..]);
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    // what a user runs: YAML -> JSON, then the AWS CLI
    let prefix = format!("cli/{name}");
    let vbk = fixture_json(&dir, ("volumebackup", "vbk"), &name, &prefix, None);
    let arn = aws_started(&flows.backup_arn, &name, &vbk);
    let doc = completed(&flows, &arn).await;
    assert_eq!(
        doc["metadata"]["annotations"]["iam.amazonaws.com/role"],
        "arn:aws:iam::123456789012:role/tidb-backup"
    );
    // a second start of the same name is refused by Step Functions itself: no second backup
    let again = aws_start(&flows.backup_arn, &name, &vbk);
    assert!(
        !again.status.success() || String::from_utf8_lossy(&again.stdout).contains(&arn),
        "a second execution was started"
    );

    // and the restore of it, from the original's VolumeRestore YAML, into recovery-mode TidbClusters
    let world = World::from_env().await;
    let target = format!("{name}-rt");
    let planes = world.plane_names(3);
    seed_restore_target(
        &world.kubeconfig,
        &planes,
        &TidbClusterSeed::new(&target, "basic", &target).stores_per_plane(3),
    )
    .await
    .unwrap();
    let rname = format!("r{name}");
    let vrt = fixture_json(
        &dir,
        ("volumerestore", "vrt"),
        &rname,
        &prefix,
        Some(&target),
    );
    let arn = aws_started(&flows.restore_arn, &rname, &vrt);
    let vrt = completed(&flows, &arn).await;
    assert_eq!(
        vrt["status"]["commitTs"], doc["status"]["commitTs"],
        "restored to the backup's minimum resolved ts"
    );
}
