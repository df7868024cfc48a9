//! The function roles stay narrow: each its own, no wildcard action, only the calls its crate
//! makes. The ownership model's IAM half (`docs/safety.md`, "IAM"): tag conditions on every
//! snapshot and volume deletion and every tagging.

use super::*;
use crate::s3::s3_resource;

/// The EC2 actions a function calls (`functions/adapters/src/ec2_volumes.rs`), by crate: the
/// only EC2 grants a function role may have.
const EC2_CALLS: &[(&str, &str)] = &[
    // Opt-in cleanup of a failed restore's volumes (RestoreVolumeCleanup).
    ("restore-finalize", "ec2:DeleteVolume"),
    ("restore-abort", "ec2:DeleteVolume"),
    // Whose the volumes made from a member's snapshots are (`restore::volumes::claim`,
    // `Ec2Volumes::volumes_from_snapshots` and `describe_volume`).
    ("restore-observe", "ec2:DescribeVolumes"),
    ("restore-finalize", "ec2:DescribeVolumes"),
    ("restore-abort", "ec2:DescribeVolumes"),
    // Claims them: tags them with the stack and the restore (`Volumes::tag_volumes`), at
    // VolumeComplete (observe) or in the leftovers report (finalize, abort).
    ("restore-observe", "ec2:CreateTags"),
    ("restore-finalize", "ec2:CreateTags"),
    ("restore-abort", "ec2:CreateTags"),
    // Snapshots of members brfed cleans itself (`delete::delete_snapshots`), each read right
    // before its deletion (`Ec2Volumes::describe_snapshots`).
    ("backup-delete-snapshots", "ec2:DeleteSnapshot"),
    ("backup-delete-snapshots", "ec2:DescribeSnapshots"),
    // Verifies the snapshots are gone, and whose those left are (`Ec2Volumes::describe_snapshots`).
    ("backup-delete-finish", "ec2:DescribeSnapshots"),
    // Whose the listed snapshots are, and `brfed.dev/retained` on those the policy keeps
    // (`delete::start`).
    ("backup-delete-start", "ec2:DescribeSnapshots"),
    ("backup-delete-start", "ec2:CreateTags"),
    // Tags the snapshots proven the backup's with the stack and the backup
    // (`orphans::tag_backup_snapshots`).
    ("backup-finalize", "ec2:CreateTags"),
    ("backup-finalize", "ec2:DescribeSnapshots"),
];

/// EC2 actions without resource-level permissions: IAM only matches them with `Resource: "*"`.
/// A statement may grant one of these on `"*"` only when it grants nothing else, so that the
/// `"*"` reaches no action that could be narrowed. Everything else in EC2 must name an ARN.
const EC2_WITHOUT_RESOURCE_LEVEL: &[&str] = &["ec2:DescribeSnapshots", "ec2:DescribeVolumes"];

/// What Lambda needs of a function's role to run it in a VPC (its network interfaces, the
/// documented set, on `*`): granted only under the condition `InVpc`, in the statement
/// `VpcNetworkInterfaces`, to the functions that reach the data planes.
const VPC_ENI_ACTIONS: &[&str] = &[
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
];

/// The Step Functions calls of the scheduled functions (`functions/adapters/src/sfn_executions.rs`),
/// by crate: the state machine (its ASL file) whose executions it starts. `Executions::start`
/// asks `DescribeExecution` first (a repeated start is reported as one), and `schedule-tick` also
/// asks it of the last backups; so each gets `states:StartExecution` on that state machine and
/// `states:DescribeExecution` on its executions, and nothing else of Step Functions.
const SFN_CALLS: &[(&str, &str)] = &[
    ("schedule-tick", "volume-backup.asl.json"),
    ("retention-sweep", "volume-backup-delete.asl.json"),
];

/// The crates that only ask Step Functions about executions of one state machine (its ASL file),
/// never start one: `states:DescribeExecution` on its executions, and nothing else of Step
/// Functions. `restore-delete`: has the execution of a restore whose record never ended stopped?
const SFN_DESCRIBE_ONLY: &[(&str, &str)] = &[("restore-delete", "volume-restore.asl.json")];

/// The crates that put brfed's events on EventBridge (`docs/signals.md`): their `src/main.rs`
/// calls `runtime.signals()` (`functions/adapters/src/emit.rs`) after its step. Exactly these get
/// `events:PutEvents`, alone in its statement, on the default bus only (`BRFED_EVENT_BUS` is left
/// at its default `default`) and only for events of source `brfed` (`events:source`).
const EVENT_EMITTERS: &[&str] = &[
    "backup-finalize",
    "backup-abort",
    "restore-finalize",
    "restore-abort",
    "backup-delete-finish",
];

/// The crate that sends settle checks (`schedule::steps::settle_checks`, sent by
/// `SchedulerRuntime::send_settle_checks`) and runs missed ticks (`schedule::steps::catch_up`):
/// besides its own state machine, `StartExecution` on `volume-backup` and `DescribeExecution`
/// on its executions (has the backup's execution ended? was this tick started?), and
/// `events:PutEvents` on the default bus of source `brfed.internal` only (not brfed's public
/// events), which the settle-check rule sends to `backup-abort`.
const SETTLE_CHECKER: &str = "retention-sweep";

/// The ARN of the default event bus, as the template spells it.
const DEFAULT_BUS: &str =
    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default";

/// Whether a crate emits brfed's events (`runtime.signals()` in its `src/main.rs`).
fn emits_events(krate: &str) -> bool {
    main_rs(krate).contains(".signals()")
}

#[test]
fn every_function_has_its_own_role_with_no_wildcard_action_and_no_wildcard_s3_resource() {
    let t = template();
    let invoked_by_events = invoked_by_events(&t);
    let mut roles = BTreeSet::new();
    for (krate, role_id, role) in function_roles(&t) {
        let id = function_id(&krate);
        assert!(roles.insert(role_id.clone()), "{id} shares {role_id}");
        assert!(
            role["Properties"]["ManagedPolicyArns"].is_null(),
            "{role_id}: inline policies only, so this test sees every grant"
        );
        let stmts = statements(role);
        assert!(!stmts.is_empty(), "{role_id} grants nothing");
        // the VPC and KMS statements are checked on their own (below)
        let stmts: Vec<&Value> = stmts
            .into_iter()
            .filter(|s| {
                !["VpcNetworkInterfaces", "KmsKeysThroughS3"]
                    .contains(&s["Sid"].as_str().unwrap_or(""))
            })
            .collect();
        let mut sfn_granted = BTreeSet::new();
        let mut events_granted = false;
        let mut settle_granted = false;
        for s in stmts {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{role_id}");
            assert!(
                s["NotAction"].is_null() && s["NotResource"].is_null(),
                "{role_id}"
            );
            let actions = actions_of(s);
            let describe_only = SFN_DESCRIBE_ONLY
                .iter()
                .find(|(k, _)| *k == krate)
                .map(|(_, file)| *file);
            let sfn = SFN_CALLS
                .iter()
                .find(|(k, _)| *k == krate)
                .map(|(_, file)| *file)
                .or(describe_only);
            for a in &actions {
                assert!(
                    *a != "*" && !a.ends_with(":*"),
                    "{role_id}: wildcard action {a}"
                );
                // Only what the functions call: their logs, S3, the EC2 actions listed, for
                // the scheduled functions the two Step Functions calls, and for those
                // EventBridge invokes, Lambda's on-failure delivery to the safety-net queue.
                assert!(
                    a.starts_with("logs:")
                        || a.starts_with("s3:")
                        || EC2_CALLS.contains(&(krate.as_str(), *a))
                        || (sfn.is_some()
                            && ["states:StartExecution", "states:DescribeExecution"].contains(a)
                            && (describe_only.is_none() || *a == "states:DescribeExecution"))
                        || (*a == "events:PutEvents"
                            && (EVENT_EMITTERS.contains(&krate.as_str())
                                || krate == SETTLE_CHECKER))
                        || (*a == "sqs:SendMessage" && invoked_by_events.contains(&krate)),
                    "{role_id}: {krate} does not call {a}"
                );
            }
            if actions.contains(&"events:PutEvents") {
                // brfed's events only: the default bus, source `brfed`, nothing else granted.
                assert_eq!(actions, ["events:PutEvents"], "{role_id}: PutEvents alone");
                let resources = statement_resources(s);
                assert_eq!(resources.len(), 1, "{role_id}: one bus");
                assert_eq!(
                    sub_text(resources[0]),
                    Some(DEFAULT_BUS),
                    "{role_id}: PutEvents on the default bus only"
                );
                let source = s["Condition"]["StringEquals"]["events:source"].as_str();
                if krate == SETTLE_CHECKER {
                    assert_eq!(
                        source,
                        Some("brfed.internal"),
                        "{role_id}: settle checks of source brfed.internal only"
                    );
                    settle_granted = true;
                } else {
                    assert_eq!(
                        source,
                        Some("brfed"),
                        "{role_id}: PutEvents of source brfed only"
                    );
                    events_granted = true;
                }
            }
            if actions.iter().any(|a| a.starts_with("ec2:")) {
                let describe_only = actions
                    .iter()
                    .all(|a| EC2_WITHOUT_RESOURCE_LEVEL.contains(a));
                for r in statement_resources(s) {
                    if describe_only && r.as_str() == Some("*") {
                        continue;
                    }
                    let arn = r.as_str().or_else(|| sub_text(r)).unwrap_or_default();
                    assert!(arn.starts_with("arn:"), "{role_id}: EC2 resource {r:?}");
                }
            }
            if let Some(file) = sfn
                && actions.iter().any(|a| a.starts_with("states:"))
            {
                // Exactly the one state machine: StartExecution on it, DescribeExecution on its
                // executions (`execution:<name>:*`, which no other machine's name matches).
                let (sm_id, _) = state_machine_of(&t, file);
                let executions_of = |file: &str| {
                    format!(
                        "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:${{NamePrefix}}-{}:*",
                        file.trim_end_matches(".asl.json")
                    )
                };
                let executions = executions_of(file);
                let backups = executions_of("volume-backup.asl.json");
                assert_eq!(
                    actions.len(),
                    1,
                    "{role_id}: one Step Functions action a statement"
                );
                for r in statement_resources(s) {
                    match actions[0] {
                        "states:StartExecution"
                            if krate == SETTLE_CHECKER
                                && ref_of(r) == Some("VolumeBackupStateMachine") => {}
                        "states:StartExecution" => assert_eq!(
                            ref_of(r),
                            Some(sm_id.as_str()),
                            "{role_id}: StartExecution on {sm_id} only"
                        ),
                        _ if krate == SETTLE_CHECKER && sub_text(r) == Some(backups.as_str()) => {}
                        _ => assert_eq!(
                            sub_text(r),
                            Some(executions.as_str()),
                            "{role_id}: DescribeExecution on the executions of {sm_id} only"
                        ),
                    }
                    sfn_granted.insert(actions[0]);
                }
            }
            if actions.iter().any(|a| a.starts_with("s3:")) {
                for r in statement_resources(s) {
                    // One of the stack's buckets (`s3_resource` refuses any other), and never
                    // every object of it.
                    let (bucket, key) = s3_resource(&t, &role_id, r);
                    assert_ne!(
                        key.as_deref(),
                        Some("*"),
                        "{role_id}: {r:?} is a whole {bucket:?} bucket"
                    );
                }
            }
        }
        assert_eq!(
            events_granted,
            EVENT_EMITTERS.contains(&krate.as_str()),
            "{role_id}: events:PutEvents exactly for the crates that emit events"
        );
        assert_eq!(
            settle_granted,
            krate == SETTLE_CHECKER,
            "{role_id}: settle checks are {SETTLE_CHECKER}'s only"
        );
        if SFN_DESCRIBE_ONLY.iter().any(|(k, _)| *k == krate) {
            assert_eq!(
                sfn_granted,
                BTreeSet::from(["states:DescribeExecution"]),
                "{role_id}: {krate} describes executions, and starts none"
            );
        }
        if SFN_CALLS.iter().any(|(k, _)| *k == krate) {
            assert_eq!(
                sfn_granted,
                BTreeSet::from(["states:DescribeExecution", "states:StartExecution"]),
                "{role_id}: {krate} starts and describes executions"
            );
        }
    }
}

#[test]
fn the_event_emitters_are_the_crates_whose_main_emits_signals() {
    let emitting: BTreeSet<String> = function_crates()
        .into_iter()
        .filter(|k| emits_events(k))
        .collect();
    let listed: BTreeSet<String> = EVENT_EMITTERS.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        emitting, listed,
        "EVENT_EMITTERS must list exactly the crates that call runtime.signals()"
    );
}

/// The conditions of a statement under operator `op` and key `key`.
fn condition<'a>(s: &'a Value, op: &str, key: &str) -> &'a Value {
    &s["Condition"][op][key]
}

/// Every `ec2:DeleteSnapshot` and `ec2:DeleteVolume` only on resources tagged with this stack
/// (`brfed.dev/stack` = the catalog bucket) and as a backup's / a restore's: whatever a
/// `backupmeta` or a restore's leftovers name, IAM refuses what is not brfed's.
#[test]
fn every_snapshot_and_volume_deletion_needs_this_stacks_tags() {
    let t = template();
    let stack = stack_identity(&t);
    let mut seen = BTreeSet::new();
    for (krate, role_id, role) in function_roles(&t) {
        for s in statements(role) {
            let actions = actions_of(s);
            for (action, kind_tag) in [
                ("ec2:DeleteSnapshot", "brfed.dev/volumebackup"),
                ("ec2:DeleteVolume", "brfed.dev/volumerestore"),
            ] {
                if !actions.contains(&action) {
                    continue;
                }
                seen.insert(action);
                assert_eq!(
                    actions,
                    [action],
                    "{role_id}: {action} alone in its statement"
                );
                assert_eq!(
                    condition(s, "StringEquals", "aws:ResourceTag/brfed.dev/stack"),
                    &stack,
                    "{role_id} ({krate}): {action} only on resources tagged brfed.dev/stack = the catalog bucket"
                );
                assert_eq!(
                    condition(s, "Null", &format!("aws:ResourceTag/{kind_tag}")).as_str(),
                    Some("false"),
                    "{role_id} ({krate}): {action} only on resources tagged {kind_tag}"
                );
            }
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["ec2:DeleteSnapshot", "ec2:DeleteVolume"]),
        "the template grants both deletions somewhere; this test must see them"
    );
}

/// Every `ec2:CreateTags`: `brfed.dev/*` keys only, always with `brfed.dev/stack` = this stack,
/// on resources that carry no `brfed.dev/stack` yet or carry ours. IAM ANDs the conditions of
/// one statement and ORs statements, so "untagged or ours" takes two statements: one with
/// `Null` = true, one with `StringEquals` ours (never `...IfExists`, never both in one).
#[test]
fn every_create_tags_sets_brfed_keys_with_this_stack_on_unowned_or_own_resources() {
    let t = template();
    let stack = stack_identity(&t);
    let mut saw_unowned = false;
    let mut saw_own = false;
    for (krate, role_id, role) in function_roles(&t) {
        for s in statements(role) {
            let actions = actions_of(s);
            if !actions.contains(&"ec2:CreateTags") {
                continue;
            }
            assert_eq!(actions, ["ec2:CreateTags"], "{role_id}: CreateTags alone");
            for r in statement_resources(s) {
                let arn = sub_text(r).unwrap_or_default();
                assert!(
                    arn.ends_with(":snapshot/*") || arn.ends_with(":volume/*"),
                    "{role_id}: CreateTags on snapshots or volumes only, not {r:?}"
                );
            }
            let ops: BTreeSet<&str> = s["Condition"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{role_id} ({krate}): CreateTags without conditions"))
                .keys()
                .map(|k| k.as_str().unwrap())
                .collect();
            assert!(
                ops.iter().all(|o| !o.ends_with("IfExists")),
                "{role_id}: no IfExists operator may loosen CreateTags"
            );
            let keys: Vec<_> = one_or_many(condition(s, "ForAllValues:StringLike", "aws:TagKeys"))
                .into_iter()
                .map(|k| k.as_str().unwrap_or_default())
                .collect();
            assert_eq!(
                keys,
                ["brfed.dev/*"],
                "{role_id}: CreateTags of brfed.dev/* keys only"
            );
            assert_eq!(
                condition(s, "StringEquals", "aws:RequestTag/brfed.dev/stack"),
                &stack,
                "{role_id}: every CreateTags sets brfed.dev/stack = the catalog bucket"
            );
            let unowned =
                condition(s, "Null", "aws:ResourceTag/brfed.dev/stack").as_str() == Some("true");
            let own = condition(s, "StringEquals", "aws:ResourceTag/brfed.dev/stack") == &stack;
            assert!(
                unowned ^ own,
                "{role_id}: CreateTags only on resources without brfed.dev/stack (Null true) or with ours (StringEquals), one per statement"
            );
            saw_unowned |= unowned;
            saw_own |= own;
        }
    }
    assert!(
        saw_unowned && saw_own,
        "snapshot tagging needs both statements: untagged snapshots and this stack's"
    );
}

/// `DataPlaneRoleArns` (what an administrator gives access to every data plane, docs/deploy.md
/// "Data-plane access") is exactly the roles of the functions that get the data planes'
/// kubeconfig: a new such function left out would be refused by every data plane.
#[test]
fn the_data_plane_roles_output_is_every_role_whose_function_reaches_the_data_planes() {
    let t = template();
    let reaching = data_plane_roles(&t);
    assert!(reaching.len() >= 10, "{reaching:?}");
    let joined = &t["Outputs"]["DataPlaneRoleArns"]["Value"]["Fn::Join"];
    assert_eq!(joined[0].as_str(), Some(","), "comma-separated");
    let listed: Vec<String> = one_or_many(&joined[1])
        .into_iter()
        .map(|v| {
            get_att(v, "Arn")
                .unwrap_or_else(|| panic!("not a role ARN: {v:?}"))
                .to_string()
        })
        .collect();
    assert_eq!(
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        reaching,
        "DataPlaneRoleArns"
    );
    assert_eq!(listed.len(), reaching.len(), "each role once");
}

/// Private EKS endpoints: with `VpcSubnetIds`, every function that reaches the data planes runs
/// in that VPC (`VpcConfig` under `InVpc`) and its role may manage the network interfaces Lambda
/// makes, under the same condition only; the scheduled functions (no data plane) stay outside.
#[test]
fn the_data_plane_functions_can_run_in_a_vpc_and_only_they_get_its_grant() {
    let t = template();
    let reaching = data_plane_roles(&t);
    for (krate, role_id, role) in function_roles(&t) {
        let id = function_id(&krate);
        let f = &resource(&t, &id)["Properties"];
        let reaches = reaching.contains(&role_id);
        let vpc_statements: Vec<&Value> = policy_statements(role)
            .into_iter()
            .filter(|s| {
                s["Fn::If"][1]["Sid"].as_str() == Some("VpcNetworkInterfaces")
                    || s["Sid"].as_str() == Some("VpcNetworkInterfaces")
            })
            .collect();
        if !reaches {
            assert!(f["VpcConfig"].is_null(), "{id}: no VPC");
            assert!(vpc_statements.is_empty(), "{role_id}: no VPC grant");
            continue;
        }
        let vpc = &f["VpcConfig"]["Fn::If"];
        assert_eq!(
            vpc[0].as_str(),
            Some("InVpc"),
            "{id}: VpcConfig under InVpc"
        );
        assert_eq!(ref_of(&vpc[1]["SubnetIds"]), Some("VpcSubnetIds"), "{id}");
        assert_eq!(
            ref_of(&vpc[1]["SecurityGroupIds"]),
            Some("VpcSecurityGroupIds"),
            "{id}"
        );
        assert_eq!(ref_of(&vpc[2]), Some("AWS::NoValue"), "{id}: else no VPC");
        assert_eq!(vpc_statements.len(), 1, "{role_id}: one VPC statement");
        let cond = &vpc_statements[0]["Fn::If"];
        assert_eq!(cond[0].as_str(), Some("InVpc"), "{role_id}: only in a VPC");
        assert_eq!(ref_of(&cond[2]), Some("AWS::NoValue"), "{role_id}");
        let s = &cond[1];
        assert_eq!(
            actions_of(s),
            VPC_ENI_ACTIONS,
            "{role_id}: Lambda's set, no more"
        );
        assert_eq!(s["Resource"].as_str(), Some("*"), "{role_id}");
    }
    assert_eq!(
        t["Conditions"]["InVpc"]["Fn::Not"][0]["Fn::Equals"][0]["Fn::Join"][1]["Ref"].as_str(),
        Some("VpcSubnetIds"),
        "InVpc: VpcSubnetIds given"
    );
}

/// One identity in the data planes: `DataPlaneAccessRole` trusts exactly the roles of the
/// functions that reach the data planes, has no AWS permission of its own, and the one
/// `AWS::IAM::Policy` of the template lets exactly those roles assume it, nothing else.
#[test]
fn the_data_plane_access_role_is_assumable_by_the_data_plane_functions_only_and_grants_nothing() {
    let t = template();
    let reaching = data_plane_roles(&t);
    let access = &resource(&t, "DataPlaneAccessRole")["Properties"];
    assert!(access["Policies"].is_null() && access["ManagedPolicyArns"].is_null());
    let trust = one_or_many(&access["AssumeRolePolicyDocument"]["Statement"]);
    assert_eq!(trust.len(), 1);
    assert_eq!(trust[0]["Action"].as_str(), Some("sts:AssumeRole"));
    let trusted: BTreeSet<String> = one_or_many(&trust[0]["Principal"]["AWS"])
        .into_iter()
        .map(|p| {
            get_att(p, "Arn")
                .expect("a role of the template")
                .to_string()
        })
        .collect();
    assert_eq!(trusted, reaching, "trusted roles");

    let policies = of_type(&t, "AWS::IAM::Policy");
    assert_eq!(policies.len(), 1, "one policy resource: the assume grant");
    let p = &policies[0].1["Properties"];
    let attached: BTreeSet<String> = one_or_many(&p["Roles"])
        .into_iter()
        .map(|r| ref_of(r).expect("a role of the template").to_string())
        .collect();
    assert_eq!(attached, reaching, "roles that may assume it");
    let stmts = one_or_many(&p["PolicyDocument"]["Statement"]);
    assert_eq!(stmts.len(), 1);
    assert_eq!(actions_of(stmts[0]), ["sts:AssumeRole"]);
    assert_eq!(
        get_att(&stmts[0]["Resource"], "Arn"),
        Some("DataPlaneAccessRole")
    );
    assert_eq!(
        get_att(&t["Outputs"]["DataPlaneAccessRoleArn"]["Value"], "Arn"),
        Some("DataPlaneAccessRole")
    );
}

/// Customer-managed KMS keys (`KmsKeyArns`): every function role may decrypt and make data keys
/// with exactly those keys, through S3 only, and only when keys are given.
#[test]
fn every_function_may_use_the_given_kms_keys_through_s3_only() {
    let t = template();
    for (_, role_id, role) in function_roles(&t) {
        let kms: Vec<&Value> = policy_statements(role)
            .into_iter()
            .filter(|s| {
                s["Fn::If"][1]["Sid"].as_str() == Some("KmsKeysThroughS3")
                    || actions_of(s).iter().any(|a| a.starts_with("kms:"))
            })
            .collect();
        assert_eq!(kms.len(), 1, "{role_id}: one KMS statement");
        let cond = &kms[0]["Fn::If"];
        assert_eq!(
            cond[0].as_str(),
            Some("UseKmsKeys"),
            "{role_id}: only with keys"
        );
        assert_eq!(ref_of(&cond[2]), Some("AWS::NoValue"), "{role_id}");
        let s = &cond[1];
        assert_eq!(
            actions_of(s),
            ["kms:Decrypt", "kms:GenerateDataKey"],
            "{role_id}"
        );
        assert_eq!(
            ref_of(&s["Resource"]),
            Some("KmsKeyArns"),
            "{role_id}: those keys only"
        );
        assert_eq!(
            sub_text(&s["Condition"]["StringEquals"]["kms:ViaService"]),
            Some("s3.${AWS::Region}.amazonaws.com"),
            "{role_id}: through S3 only"
        );
    }
}

/// The roles of the functions that reach the data planes (those that get `BRFED_KUBECONFIG`).
fn data_plane_roles(t: &Value) -> BTreeSet<String> {
    function_crates()
        .into_iter()
        .filter(|k| {
            !resource(t, &function_id(k))["Properties"]["Environment"]["Variables"]
                ["BRFED_KUBECONFIG"]
                .is_null()
        })
        .map(|k| role_of(t, &k).to_string())
        .collect()
}
