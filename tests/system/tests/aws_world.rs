//! The AWS side of the local world, and starting brfed the way users do: the emulator's Step
//! Functions runs an ASL whose Lambda task reaches our own binary; error names reach Catch; the
//! event pump delivers status changes and fires schedules; the AWS CLI starts a federated backup
//! from a `VolumeBackup` YAML.

use brfed_sim_operator::seed::{TidbClusterSeed, seed_restore_target};
use brfed_system_tests::dataplane::{World, unique};
use brfed_system_tests::workflow::Workflows;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

fn sm(stem: &str) -> String {
    format!("arn:aws:states:us-west-2:123456789012:stateMachine:{stem}")
}

fn emulator(path: &str, method: &str) -> Value {
    let url = format!(
        "{}{path}",
        std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL")
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = match method {
        "POST" => agent.post(&url).send_empty().unwrap(),
        _ => agent.get(&url).call().unwrap(),
    };
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lambda_task_reaches_our_binary_and_its_error_names_reach_catch() {
    let flows = Workflows::from_env().await;
    let arn = flows
        .start(&sm("smoke"), &unique("ok"), &json!({"x": 1}))
        .await;
    let done = flows.wait(&arn, Duration::from_secs(30)).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    assert_eq!(done.output.unwrap()["echoed"], true);
    let arn = flows
        .start(&sm("smoke"), &unique("boom"), &json!({"fail": "BoomError"}))
        .await;
    let done = flows.wait(&arn, Duration::from_secs(30)).await;
    assert_eq!(done.status, "SUCCEEDED");
    let out = done.output.unwrap();
    assert_eq!(out["handled"], "BoomError was caught");
    assert_eq!(out["error"]["Error"], "BoomError");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_pump_delivers_status_changes_and_fires_schedules() {
    let flows = Workflows::from_env().await;
    let arn = flows
        .start(
            &sm("smoke-fail"),
            &unique("fail"),
            &json!({"fail": "Unhandled"}),
        )
        .await;
    assert_eq!(
        flows.wait(&arn, Duration::from_secs(30)).await.status,
        "FAILED"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = emulator("/_brfed/deliveries?rule=smoke-fail-notify", "GET");
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
    let fired = emulator("/_brfed/rules/smoke-hourly/fire", "POST");
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
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/volumebackup.yaml"
    ))
    .unwrap()
    .replace("name: NAME", &format!("name: {name}"))
    .replace("prefix: PREFIX", &format!("prefix: cli/{name}"));
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vbk.yaml"), yaml).unwrap();
    // what a user runs: YAML -> JSON, then the AWS CLI
    let conv = Command::new("python3")
        .args(["-c", "import sys,yaml,json; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2],'w'))"])
        .arg(dir.join("vbk.yaml"))
        .arg(dir.join("vbk.json"))
        .status()
        .expect("python3 with PyYAML (the world's venv is on PATH)");
    assert!(conv.success());
    let out = Command::new("aws")
        .args([
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &flows.backup_arn,
            "--name",
            &name,
            "--input",
        ])
        .arg(format!("file://{}", dir.join("vbk.json").display()))
        .output()
        .expect("the AWS CLI (the world's venv is on PATH)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn = started["executionArn"].as_str().unwrap();
    let done = flows.wait(arn, Duration::from_secs(120)).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let doc = done.output.unwrap();
    assert_eq!(doc["status"]["phase"], "Complete");
    assert_eq!(
        doc["metadata"]["annotations"]["iam.amazonaws.com/role"],
        "arn:aws:iam::123456789012:role/tidb-backup"
    );
    // a second start of the same name is refused by Step Functions itself: no second backup
    let again = Command::new("aws")
        .args([
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &flows.backup_arn,
            "--name",
            &name,
            "--input",
        ])
        .arg(format!("file://{}", dir.join("vbk.json").display()))
        .output()
        .unwrap();
    assert!(
        !again.status.success() || String::from_utf8_lossy(&again.stdout).contains(arn),
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
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/volumerestore.yaml"
    ))
    .unwrap()
    .replace("name: NAME", &format!("name: {rname}"))
    .replace("tcNamespace: NAMESPACE", &format!("tcNamespace: {target}"))
    .replace("prefix: PREFIX", &format!("prefix: cli/{name}"));
    std::fs::write(dir.join("vrt.yaml"), yaml).unwrap();
    let conv = Command::new("python3")
        .args(["-c", "import sys,yaml,json; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2],'w'))"])
        .arg(dir.join("vrt.yaml"))
        .arg(dir.join("vrt.json"))
        .status()
        .unwrap();
    assert!(conv.success());
    let restore_sm =
        std::env::var("BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN").expect("restore state machine");
    let out = Command::new("aws")
        .args([
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            &restore_sm,
            "--name",
            &rname,
            "--input",
        ])
        .arg(format!("file://{}", dir.join("vrt.json").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let done = flows
        .wait(
            started["executionArn"].as_str().unwrap(),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let vrt = done.output.unwrap();
    assert_eq!(vrt["status"]["phase"], "Complete");
    assert_eq!(
        vrt["status"]["commitTs"], doc["status"]["commitTs"],
        "restored to the backup's minimum resolved ts"
    );
}
