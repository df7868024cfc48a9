//! Every function crate is deployed as a Lambda function named after it, and every Lambda
//! function of the template is a crate; its runtime, configuration and limits.

use super::*;

/// Functions whose timeout is neither an observe's (900 s) nor a short step's (60 s), and why.
const OTHER_TIMEOUTS: &[(&str, u64)] = &[
    // Reads every schedule and its backups from the catalog and may start one deletion each.
    ("retention-sweep", 300),
    // Waits up to the observe budget for a stopped restore's members to settle.
    ("restore-abort", 900),
];

/// How a function crate builds its clients, read from its `src/main.rs`.
#[derive(Debug, PartialEq)]
enum FnRuntime {
    /// `Runtime::load`: kubeconfig, catalog, data planes (every `backup-*`/`restore-*` step).
    Steps,
    /// `SchedulerRuntime::load` (`functions/adapters/src/scheduler.rs`): catalog and Step
    /// Functions only, no kubeconfig.
    Scheduler,
}

fn runtime_of(krate: &str) -> FnRuntime {
    let text = main_rs(krate);
    if text.contains("SchedulerRuntime::load") {
        FnRuntime::Scheduler
    } else if text.contains("Runtime::load") {
        FnRuntime::Steps
    } else {
        panic!(
            "{krate}: src/main.rs loads neither Runtime nor SchedulerRuntime; teach this test its configuration"
        )
    }
}

/// The crates whose step paces itself against a work budget (`runtime.pacing()`).
fn uses_work_budget(krate: &str) -> bool {
    main_rs(krate).contains(".pacing()")
}

#[test]
fn every_function_crate_is_a_lambda_function_named_after_it() {
    let t = template();
    for krate in function_crates() {
        let id = function_id(&krate);
        let f = resource(&t, &id);
        assert_eq!(f["Type"].as_str(), Some("AWS::Lambda::Function"), "{id}");
        let p = &f["Properties"];
        assert_eq!(
            sub_text(&p["FunctionName"]),
            Some(format!("${{NamePrefix}}-{krate}").as_str()),
            "{id}: FunctionName must be <NamePrefix>-{krate}"
        );
        assert_eq!(p["Runtime"].as_str(), Some("provided.al2023"), "{id}");
        assert_eq!(p["Handler"].as_str(), Some("bootstrap"), "{id}");
        assert_eq!(
            p["Code"].as_str(),
            Some(format!("lambda/{krate}/bootstrap.zip").as_str()),
            "{id}: Code must be the zip `make package` writes for {krate}"
        );
    }
}

#[test]
fn every_lambda_function_of_the_template_is_a_function_crate() {
    let t = template();
    let crates = function_crates();
    for (id, f) in of_type(&t, "AWS::Lambda::Function") {
        let name = sub_text(&f["Properties"]["FunctionName"])
            .and_then(|n| n.strip_prefix("${NamePrefix}-"))
            .unwrap_or_else(|| panic!("{id}: FunctionName must be ${{NamePrefix}}-<crate>"));
        assert!(
            crates.contains(name),
            "{id} deploys `{name}`, which is no crate under functions/"
        );
        assert_eq!(id, function_id(name));
    }
}

#[test]
fn every_function_gets_its_configuration_from_parameters_and_the_agreed_limits() {
    let t = template();
    let (backup_sm, _) = state_machine_of(&t, "volume-backup.asl.json");
    let (delete_sm, _) = state_machine_of(&t, "volume-backup-delete.asl.json");
    for krate in function_crates() {
        let id = function_id(&krate);
        let f = resource(&t, &id);
        let p = &f["Properties"];
        let env = &p["Environment"]["Variables"];
        assert!(
            !env["BRFED_CATALOG_BUCKET"].is_null(),
            "{id}: BRFED_CATALOG_BUCKET"
        );
        // What each runtime reads at start-up (`FunctionConfig::from_env`,
        // `SchedulerRuntime::load`): a step function without its kubeconfig fails its cold
        // start, and a scheduled function has no business with the data planes, so it gets
        // neither the variable nor the grant to read the kubeconfig.
        match runtime_of(&krate) {
            FnRuntime::Steps => {
                assert_eq!(
                    ref_of(&env["BRFED_KUBECONFIG"]),
                    Some("KubeconfigLocation"),
                    "{id}"
                );
                assert_eq!(
                    ref_of(&env["BRFED_OBSERVE_BUDGET_SECONDS"]),
                    Some("ObserveBudgetSeconds"),
                    "{id}"
                );
            }
            FnRuntime::Scheduler => {
                assert!(
                    env["BRFED_KUBECONFIG"].is_null(),
                    "{id}: a scheduled function needs no kubeconfig"
                );
                assert_eq!(
                    ref_of(&env["BRFED_BACKUP_STATE_MACHINE_ARN"]),
                    Some(backup_sm.as_str()),
                    "{id}"
                );
                assert_eq!(
                    ref_of(&env["BRFED_DELETE_STATE_MACHINE_ARN"]),
                    Some(delete_sm.as_str()),
                    "{id}"
                );
                let role = role_of(&t, &krate);
                let role_text = serde_yaml::to_string(resource(&t, role)).unwrap();
                assert!(
                    !role_text.contains("KubeconfigLocation"),
                    "{role}: a scheduled function must not read the kubeconfig"
                );
            }
        }
        // An observe step holds a watch for up to the budget, a paced step works for up to
        // its work budget; every other step is short.
        let long = krate.ends_with("-observe") || uses_work_budget(&krate);
        let timeout = OTHER_TIMEOUTS
            .iter()
            .find(|(k, _)| *k == krate)
            .map(|(_, s)| *s)
            .unwrap_or(if long { 900 } else { 60 });
        assert_eq!(p["Timeout"].as_u64(), Some(timeout), "{id}: Timeout");
        assert_eq!(p["MemorySize"].as_u64(), Some(256), "{id}: MemorySize");
        if uses_work_budget(&krate) {
            assert_eq!(
                ref_of(&env["BRFED_WORK_BUDGET_SECONDS"]),
                Some("WorkBudgetSeconds"),
                "{id}: its work budget"
            );
        }
    }
    let budget = &t["Parameters"]["ObserveBudgetSeconds"];
    assert_eq!(budget["Default"].as_u64(), Some(600));
    assert!(
        budget["MaxValue"].as_u64().unwrap() < 900,
        "the observe budget must stay under the observe function's timeout"
    );
    let work = &t["Parameters"]["WorkBudgetSeconds"];
    assert_eq!(work["Default"].as_u64(), Some(780));
    assert!(
        work["MaxValue"].as_u64().unwrap() < 900,
        "the work budget must stay under the paced function's timeout"
    );
}

/// `backup-start` and `restore-start` know where the stack may keep backups
/// (`BRFED_BACKUP_LOCATIONS`, every location the parameters give), so that a backup or a
/// restore elsewhere is refused by name (`BucketNotAllowed`) instead of by the 403 S3 gives
/// their roles there.
#[test]
fn backup_and_restore_start_know_every_backup_location_of_the_stack() {
    use brfed_core::backup::spec::BackupLocations;
    let t = template();
    let first = [("BackupBucketName", "data"), ("BackupPrefix", "tidb/")];
    // (the parameters given besides the first location, the locations the function gets)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 3] = [
        (&[], &["s3://data/tidb/"]),
        (
            &[("BackupBucketName2", "second"), ("BackupPrefix2", "a/b/")],
            &["s3://data/tidb/", "s3://second/a/b/"],
        ),
        (
            &[
                ("BackupBucketName2", "second"),
                ("BackupPrefix2", "a/"),
                ("BackupBucketName3", "third"),
                ("BackupPrefix3", "c/"),
            ],
            &["s3://data/tidb/", "s3://second/a/", "s3://third/c/"],
        ),
    ];
    for krate in ["backup-start", "restore-start"] {
        let env = &resource(&t, &function_id(krate))["Properties"]["Environment"]["Variables"];
        assert_eq!(
            t["Outputs"]["BackupLocations"]["Value"], env["BRFED_BACKUP_LOCATIONS"],
            "the output `brfed --stack` reads is what {krate} gets"
        );
        for (more, want) in cases {
            let mut params = first.to_vec();
            for p in [
                "BackupBucketName2",
                "BackupPrefix2",
                "BackupBucketName3",
                "BackupPrefix3",
            ] {
                params.push((p, more.iter().find(|(k, _)| *k == p).map_or("", |(_, v)| v)));
            }
            let text = evaluate(&t, &params, &env["BRFED_BACKUP_LOCATIONS"]).unwrap_or_else(|| {
                panic!(
                    "{krate}: BRFED_BACKUP_LOCATIONS {:?}",
                    env["BRFED_BACKUP_LOCATIONS"]
                )
            });
            let got: Vec<String> = BackupLocations::parse(&text)
                .unwrap_or_else(|e| panic!("{krate}: {e}"))
                .all()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{krate}: {text}");
        }
    }
}
