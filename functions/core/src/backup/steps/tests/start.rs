//! Step `backup-start`: its preflight and the named rejections, all before any side effect.

use super::*;
use crate::backup::spec::BackupRequest;
use crate::backup::steps::start::preflight;

#[tokio::test]
async fn rejections_happen_before_any_side_effect_with_their_names() {
    struct Case {
        what: &'static str,
        planes: usize,
        arrange: fn(&World),
        error: &'static str,
        retryable: bool,
        says: &'static [&'static str],
        members: usize,
    }
    let cases = [
        Case {
            what: "a data plane down",
            planes: 3,
            arrange: |w| w.planes.set_down("dp2", true),
            error: "DataPlaneUnreachable",
            retryable: true,
            says: &[],
            members: 0,
        },
        Case {
            what: "a namespace where brfed has no rights",
            planes: 3,
            arrange: |w| w.planes.forbid("dp2", "tidb"),
            error: "DataPlaneForbidden",
            retryable: false,
            says: &["dp2", "namespace tidb", "403"],
            members: 0,
        },
        Case {
            what: "TidbCluster not acrossK8s",
            planes: 3,
            arrange: |w| {
                let tc = json!({"spec": {"tikv": {"replicas": 1}}, "status": {"tikv": {"stores": {"1": {}}}}});
                w.planes.put_tidb_cluster("dp3", "tidb", "basic", tc);
            },
            error: "TidbClusterInvalid",
            retryable: false,
            says: &["dp3", "acrossK8s"],
            members: 0,
        },
        Case {
            what: "a member of that name owned by someone else",
            planes: 3,
            arrange: |w| w.planes.put_backup("dp2", foreign_member()),
            error: "MemberNameConflict",
            retryable: false,
            says: &[],
            members: 1,
        },
        Case {
            what: "a prefix already used",
            planes: 3,
            arrange: |w| w.store.put("data", "p-dp3/clustermeta", json!({})),
            error: "S3PrefixInUse",
            retryable: false,
            says: &[],
            members: 0,
        },
        Case {
            what: "an unknown data plane",
            planes: 2,
            arrange: |_| {},
            error: "UnknownCluster",
            retryable: false,
            says: &[],
            members: 0,
        },
    ];
    for c in cases {
        let w = World::new(c.planes);
        (c.arrange)(&w);
        let err = w.start(input(json!({}))).await.unwrap_err();
        assert_eq!(err.name(), c.error, "{}", c.what);
        assert_eq!(err.is_retryable(), c.retryable, "{}", c.what);
        let message = err.to_string();
        for word in c.says {
            assert!(
                message.contains(word),
                "{}: {word} missing from {message}",
                c.what
            );
        }
        assert_eq!(w.planes.backup_count(), c.members, "{}", c.what);
        assert!(w.unrecorded(), "{}: recorded", c.what);
    }

    // the same name from another execution
    let (w, _) = World::at(Stage::Started).await;
    let err = w.start_as(input(json!({})), "another").await.unwrap_err();
    assert_eq!(err.name(), "BackupExists");
    // bad spec
    let bad = json!({"metadata": {"name": "x"}, "spec": {"clusters": []}});
    assert_eq!(w.start(bad).await.unwrap_err().name(), "InvalidSpec");
}

#[tokio::test]
async fn a_preflight_reports_every_problem_at_once_and_start_names_the_most_actionable() {
    let w = World::new(3);
    // dp1: a member of that name owned by someone else; dp2: no TidbCluster; dp3: prefix used;
    // dp4: not a data plane at all.
    w.planes.put_backup("dp1", foreign_member());
    w.store.put("data", "p-dp3/clustermeta", json!({}));
    let mut v = input(json!({}));
    v["spec"]["clusters"][1]["tcName"] = json!("missing");
    v["spec"]["clusters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"k8sClusterName": "dp4", "tcName": "basic", "tcNamespace": "tidb"}));
    let req = BackupRequest::from_value(v).unwrap();
    req.validate(None).unwrap();
    let log_len = w.mutations();
    let report = preflight(&w.env(), &req, None).await;
    let names: Vec<&str> = report.problems.iter().map(|p| p.error.name()).collect();
    for want in ["UnknownCluster", "MemberNameConflict", "S3PrefixInUse"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.error.to_string().contains("does not exist in dp2")),
        "{report:?}"
    );
    assert_eq!(w.mutations(), log_len, "no mutation");
    assert!(w.unrecorded());
    assert_eq!(
        report.clone().into_result().unwrap_err().name(),
        "UnknownCluster"
    );
    // a clean one
    let w = World::new(3);
    let req = BackupRequest::from_value(input(json!({}))).unwrap();
    assert!(preflight(&w.env(), &req, None).await.is_ok());
}

/// A stack keeps backups in its locations (`BackupBucketName` under `BackupPrefix`, and the
/// optional second and third) only: a backup elsewhere is refused by that name, before anything is read or created (S3 would deny the
/// stack's roles there, and the 403 was reported as a used prefix).
#[tokio::test]
async fn a_backup_outside_the_stack_s_bucket_or_folder_is_refused_before_anything() {
    use crate::backup::spec::BackupLocations;
    let locations = BackupLocations::parse("data/tidb/,second/other/").unwrap();
    let w = World::new(3);
    let env = Env {
        backup_locations: Some(&locations),
        ..w.env()
    };
    let with = |bucket: &str, prefix: &str| {
        let mut i = input(json!({}));
        i["spec"]["template"]["s3"] =
            json!({"provider": "aws", "bucket": bucket, "prefix": prefix});
        StartInput {
            input: i,
            execution: EXEC.into(),
        }
    };
    for (bucket, prefix, says) in [
        ("other", "tidb/bk", "`other`"),
        ("data", "p", "under `s3://data/tidb/`"),
        ("data", "tidb/", "under `s3://data/tidb/`"),
        ("data", "tidbx/bk", "under `s3://data/tidb/`"),
        (
            "data",
            "other/bk",
            "under `s3://data/tidb/`, `s3://second/other/`",
        ),
        ("second", "tidb/bk", "prefix `tidb/bk` in `second`"),
    ] {
        let err = start(&env, with(bucket, prefix)).await.unwrap_err();
        assert_eq!(err.name(), "BucketNotAllowed", "{bucket}/{prefix}: {err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(!err.is_retryable());
    }
    assert!(w.planes.log.lock().unwrap().is_empty(), "no member");
    assert_eq!(w.store.calls(), 0, "not even a catalog read");
    for (bucket, prefix) in [("data", "tidb/bk"), ("second", "other/bk")] {
        let w = World::new(3);
        let env = Env {
            backup_locations: Some(&locations),
            ..w.env()
        };
        start(&env, with(bucket, prefix))
            .await
            .unwrap_or_else(|e| panic!("{bucket}/{prefix} is inside: it starts ({e})"));
    }
}

/// A namespace without brfed's rights is said once per data plane, the plane's name once.
#[tokio::test]
async fn a_forbidden_namespace_is_said_once_with_its_data_plane() {
    let w = World::new(3);
    w.planes.forbid("dp2", "tidb");
    let err = w.start(input(json!({}))).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "data plane forbids it: dp2: list backups in namespace tidb: 403 forbidden"
    );
}
