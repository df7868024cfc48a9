//! S3 grants (`docs/safety.md`, "IAM"): each function gets exactly the catalog collections it
//! uses, every grant is under a prefix that ends in `/`, `BackupPrefix` is required and one
//! folder, and the optional second and third backup locations get exactly the first one's rights.

use super::*;

/// IAM's wildcard match: `*` is any run of characters (`/` included), `?` one character.
fn iam_glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    go(&p, &t)
}

#[test]
fn iam_glob_matches_as_iam_does() {
    assert!(iam_glob(
        "brfed/catalog/volumebackups/*",
        "brfed/catalog/volumebackups/a/b.json"
    ));
    assert!(!iam_glob(
        "brfed/catalog/deletions/*",
        "brfed/catalog/deletions-x/a.json"
    ));
    assert!(iam_glob("b/*/clustermeta", "b/x/y-dp1/clustermeta"));
    assert!(iam_glob("a?c", "abc") && !iam_glob("a?c", "ac"));
}

/// The BackupPrefix value the S3 checks substitute (one the parameter accepts).
const SAMPLE_BACKUP_PREFIX: &str = "tidb-backups/";

/// A regex of a parameter's `AllowedPattern`, anchored as CloudFormation applies it (the whole
/// value must match).
fn allowed(t: &Value, param: &str) -> regex::Regex {
    let p = t["Parameters"][param]["AllowedPattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{param} has no AllowedPattern"));
    regex::Regex::new(&format!("^(?:{p})$")).unwrap_or_else(|e| panic!("{param}: {e}"))
}

#[test]
fn backup_prefix_is_required_not_empty_and_one_folder() {
    let t = template();
    let p = &t["Parameters"]["BackupPrefix"];
    assert!(
        p["Default"].is_null(),
        "BackupPrefix must have no default: the deployer names the folder"
    );
    let re = allowed(&t, "BackupPrefix");
    for ok in [SAMPLE_BACKUP_PREFIX, "a/", "team.a/tidb_backups/", "x/(y)/"] {
        assert!(re.is_match(ok), "BackupPrefix must accept {ok:?}");
    }
    for bad in [
        "",
        "/",
        "a",
        "tidb-backups",
        "/tidb/",
        "*/",
        "a*/",
        "a?/",
        "${x}/",
        "a/b",
        "a /",
    ] {
        assert!(!re.is_match(bad), "BackupPrefix must refuse {bad:?}");
    }
    let d = p["Description"].as_str().unwrap_or_default();
    assert!(
        d.contains("ending in /") && d.contains("Required"),
        "BackupPrefix's description must say it is required and ends in /"
    );
}

/// Which bucket an S3 resource is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum S3Bucket {
    /// `BRFED_CATALOG_BUCKET`.
    Catalog,
    /// `BackupBucketName`.
    Backup,
    /// The kubeconfig object of `KubeconfigLocation`.
    Kubeconfig,
}

/// `text` with `${BackupPrefix}` replaced by [`SAMPLE_BACKUP_PREFIX`], once the parameter is
/// known to refuse every value that is not a folder (empty, or without its trailing `/`): only
/// then is `${BackupPrefix}*` one folder, whatever the deployer passes.
/// The second and third locations' folders may be empty (no location): the template's rules
/// require each with its bucket, and their grants stand under their bucket's condition
/// ([`the_second_and_third_locations_get_the_rights_of_the_first_under_their_condition`]).
fn with_backup_prefix(t: &Value, text: &str) -> String {
    let mut out = text.to_string();
    for param in ["BackupPrefix", "BackupPrefix2", "BackupPrefix3"] {
        let placeholder = format!("${{{param}}}");
        if !text.contains(&placeholder) {
            continue;
        }
        let re = allowed(t, param);
        assert!(re.is_match(SAMPLE_BACKUP_PREFIX));
        let not_folders: &[&str] = if param == "BackupPrefix" {
            &["", "tidb-backups", "a/b"]
        } else {
            &["tidb-backups", "a/b"]
        };
        for not_a_folder in not_folders {
            assert!(
                !re.is_match(not_a_folder),
                "{param} accepts {not_a_folder:?}, so {placeholder}* in {text} is not one folder"
            );
        }
        out = out.replace(&placeholder, SAMPLE_BACKUP_PREFIX);
    }
    out
}

/// `(bucket, key pattern)` of an S3 ARN resource (`None` for the bucket itself), with
/// `${BackupPrefix}` replaced by [`SAMPLE_BACKUP_PREFIX`] ([`with_backup_prefix`]).
pub(crate) fn s3_resource(t: &Value, role_id: &str, r: &Value) -> (S3Bucket, Option<String>) {
    let arn = r
        .as_str()
        .or_else(|| sub_text(r))
        .unwrap_or_else(|| panic!("{role_id}: S3 resource {r:?}"));
    let path = arn
        .strip_prefix("arn:${AWS::Partition}:s3:::")
        .unwrap_or_else(|| panic!("{role_id}: S3 resource {arn} is no S3 ARN of this partition"));
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (path, None),
    };
    let bucket = match bucket {
        "${Bucket}" => {
            assert_eq!(
                r["Fn::Sub"][1]["Bucket"],
                stack_identity(t),
                "{role_id}: ${{Bucket}} of {arn} must be the catalog bucket"
            );
            S3Bucket::Catalog
        }
        "${BackupBucketName}" | "${BackupBucketName2}" | "${BackupBucketName3}" => S3Bucket::Backup,
        "${Object}" => {
            // `bucket/key` of KubeconfigLocation, granted as one exact object: the parameter
            // must refuse IAM's wildcards in it.
            let re = allowed(t, "KubeconfigLocation");
            assert!(re.is_match("s3://my-config/brfed/kubeconfig"));
            for wild in [
                "s3://my-config/*",
                "s3://my-config/k?",
                "s3://my-config/a/*/k",
            ] {
                assert!(
                    !re.is_match(wild),
                    "KubeconfigLocation must refuse {wild}: the grant would reach more than one object"
                );
            }
            return (S3Bucket::Kubeconfig, Some("kubeconfig".into()));
        }
        other => panic!("{role_id}: {arn} is in bucket {other}, none of the stack's"),
    };
    let key = key.map(|k| with_backup_prefix(t, k));
    if let Some(k) = &key {
        assert!(
            !k.contains("${"),
            "{role_id}: {arn}: a key may use no parameter but a BackupPrefix"
        );
    }
    (bucket, key)
}

/// Whether a key pattern stays inside a folder: the text before its first wildcard is not empty
/// and ends in `/` (so `brfed/catalog/deletions/*` cannot reach `brfed/catalog/deletions-x`).
fn under_a_folder(pattern: &str) -> bool {
    match pattern.find(['*', '?']) {
        None => !pattern.is_empty(),
        Some(i) => pattern[..i].ends_with('/'),
    }
}

#[test]
fn every_s3_grant_is_under_a_prefix_that_ends_in_a_slash() {
    let t = template();
    for (_, role_id, role) in function_roles(&t) {
        for s in statements(role) {
            let actions = actions_of(s);
            if !actions.iter().any(|a| a.starts_with("s3:")) {
                continue;
            }
            for r in statement_resources(s) {
                let (bucket, key) = s3_resource(&t, &role_id, r);
                match key {
                    Some(k) => {
                        assert!(
                            !actions.contains(&"s3:ListBucket"),
                            "{role_id}: s3:ListBucket is granted on buckets, not on {k}"
                        );
                        assert!(
                            under_a_folder(&k),
                            "{role_id}: {bucket:?} key {k} is not under a prefix ending in /"
                        );
                    }
                    None => {
                        assert_eq!(
                            actions,
                            ["s3:ListBucket"],
                            "{role_id}: only s3:ListBucket on a whole {bucket:?} bucket"
                        );
                        for p in one_or_many(&s["Condition"]["StringLike"]["s3:prefix"]) {
                            let p = with_backup_prefix(
                                &t,
                                p.as_str()
                                    .or_else(|| sub_text(p))
                                    .unwrap_or_else(|| panic!("{role_id}: s3:prefix {p:?}")),
                            );
                            assert!(
                                under_a_folder(&p),
                                "{role_id}: s3:prefix {p} is not under a prefix ending in /"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The catalog collections each function crate reads (`r`), writes (`w`) or deletes from (`d`),
/// read in its step (`functions/core/src`): its role gets exactly these, and nothing of the
/// other collections.
const CATALOG_ACCESS: &[(&str, &str, &str)] = &[
    ("backup-start", "volumebackups", "rw"),
    ("backup-observe", "volumebackups", "rw"),
    ("backup-execute", "volumebackups", "rw"),
    ("backup-resume-gc", "volumebackups", "rw"),
    ("backup-teardown", "volumebackups", "rw"),
    ("backup-finalize", "volumebackups", "rw"),
    // `steps::abort`, and `delete::aborted` for a stopped deletion.
    ("backup-abort", "volumebackups", "rw"),
    ("restore-start", "volumerestores", "rw"),
    // `restore::steps::resolve_from_backup`: a restore named after a backup.
    ("restore-start", "volumebackups", "r"),
    // `restore::steps::start`: is the record in the way one whose deletion removes it now?
    ("restore-start", "volumerestore-generations", "r"),
    // `restore::steps::delete`: the record (kept with what remains, or removed), and the name's
    // generation it raises.
    ("restore-delete", "volumerestores", "rwd"),
    ("restore-delete", "volumerestore-generations", "rw"),
    ("restore-observe", "volumerestores", "rw"),
    ("restore-data", "volumerestores", "rw"),
    ("restore-finish", "volumerestores", "rw"),
    ("restore-finalize", "volumerestores", "rw"),
    ("restore-abort", "volumerestores", "rw"),
    ("backup-delete-start", "volumebackups", "rw"),
    ("backup-delete-start", "deletions", "rw"),
    ("backup-delete-snapshots", "deletions", "r"),
    ("backup-delete-finish", "volumebackups", "rwd"),
    ("backup-delete-finish", "deletions", "rd"),
    ("schedule-tick", "volumebackupschedules", "rw"),
    // The last backup's document: a tick waits while its members still run.
    ("schedule-tick", "volumebackups", "r"),
    // The sweep runs a schedule's latest missed tick and records it as the tick does.
    ("retention-sweep", "volumebackupschedules", "rw"),
    ("retention-sweep", "volumebackups", "r"),
];

/// A key of each catalog collection, as the code makes it.
fn catalog_keys() -> Vec<(&'static str, String)> {
    let keys = vec![
        (
            "volumebackups",
            brfed_core::backup::status::backup_key("team-a", "nightly-x"),
        ),
        (
            "volumerestores",
            brfed_core::restore::status::restore_key("team-a", "nightly-x"),
        ),
        (
            "volumerestore-generations",
            brfed_core::restore::status::generation_key("team-a", "nightly-x"),
        ),
        (
            "volumebackupschedules",
            brfed_core::schedule::status::schedule_key("team-a", "nightly"),
        ),
        (
            "deletions",
            brfed_core::delete::status::manifest_key("team-a", "nightly-x"),
        ),
    ];
    for (c, k) in &keys {
        assert!(
            k.starts_with(&format!("{}/{c}/", brfed_core::catalog::CATALOG_PREFIX)),
            "{k} is not in collection {c}"
        );
    }
    keys
}

#[test]
fn every_function_gets_exactly_the_catalog_collections_it_uses() {
    let t = template();
    let keys = catalog_keys();
    let letter = |a: &str| match a {
        "s3:GetObject" => 'r',
        "s3:PutObject" => 'w',
        "s3:DeleteObject" => 'd',
        other => panic!("catalog action {other}"),
    };
    for (krate, role_id, role) in function_roles(&t) {
        // (letter, key pattern) granted on the catalog bucket's objects.
        let mut granted: Vec<(char, String)> = Vec::new();
        for s in statements(role) {
            let actions = actions_of(s);
            if !actions.iter().any(|a| a.starts_with("s3:")) {
                continue;
            }
            for r in statement_resources(s) {
                if let (S3Bucket::Catalog, Some(k)) = s3_resource(&t, &role_id, r) {
                    for a in &actions {
                        granted.push((letter(a), k.clone()));
                    }
                }
            }
        }
        for (collection, key) in &keys {
            let wanted = CATALOG_ACCESS
                .iter()
                .find(|(k, c, _)| *k == krate && c == collection)
                .map(|(_, _, a)| *a)
                .unwrap_or("");
            for l in ['r', 'w', 'd'] {
                let has = granted.iter().any(|(g, p)| *g == l && iam_glob(p, key));
                assert_eq!(
                    has,
                    wanted.contains(l),
                    "{role_id}: {krate} {} `{l}` on catalog collection {collection} ({key})",
                    if wanted.contains(l) {
                        "needs"
                    } else {
                        "must not have"
                    }
                );
            }
        }
        for (l, p) in &granted {
            assert!(
                keys.iter().any(|(_, k)| iam_glob(p, k)),
                "{role_id}: `{l}` on catalog keys {p}, which is no collection brfed has"
            );
        }
    }
}

/// The placeholders of backup location `n` (1 is `BackupBucketName`/`BackupPrefix`).
fn location_params(n: u8) -> [String; 2] {
    let suffix = if n == 1 { String::new() } else { n.to_string() };
    [
        format!("BackupBucketName{suffix}"),
        format!("BackupPrefix{suffix}"),
    ]
}

/// Which backup location an expression names (`None`: none; a mix fails the test).
fn location_of(v: &Value) -> Option<u8> {
    let text = serde_yaml::to_string(v).unwrap();
    let named: BTreeSet<u8> = (1..=3)
        .filter(|n| {
            location_params(*n)
                .iter()
                .any(|p| text.contains(&format!("${{{p}}}")))
        })
        .collect();
    assert!(named.len() <= 1, "{text} names several backup locations");
    named.into_iter().next()
}

/// `v` written for location 1: location `n`'s placeholders renamed.
fn as_first_location(v: &Value, n: u8) -> String {
    let mut text = serde_yaml::to_string(v).unwrap();
    for (theirs, first) in location_params(n).iter().zip(location_params(1)) {
        text = text.replace(&format!("${{{theirs}}}"), &format!("${{{first}}}"));
    }
    text
}

/// A second and a third bucket (`BackupBucketName2`/`BackupPrefix2`, `...3`): every role gets
/// there exactly what it gets in `BackupBucketName` under `BackupPrefix` (the same actions, keys
/// and list conditions), and nothing unless the location is given (each grant under its
/// condition `BackupLocation<n>`); a ListBucket's folder condition stays with its own bucket.
#[test]
fn the_second_and_third_locations_get_the_rights_of_the_first_under_their_condition() {
    let t = template();
    let mut roles_with_locations = 0;
    for (_, role_id, role) in function_roles(&t) {
        // per location: each grant as written for location 1 (statement without Sid and
        // resource, plus the resource)
        let mut grants: [BTreeSet<String>; 3] = Default::default();
        let mut record = |n: u8, s: &Value, r: &Value| {
            let mut bare = s.clone();
            if let Some(m) = bare.as_mapping_mut() {
                m.remove("Sid");
                m.remove("Resource");
            }
            let grant = format!("{}{}", as_first_location(&bare, n), as_first_location(r, n));
            grants[usize::from(n - 1)].insert(grant);
        };
        for written in policy_statements(role) {
            let (guard, s) = match written["Fn::If"].as_sequence() {
                Some(b) => (b[0].as_str(), &b[1]),
                None => (None, written),
            };
            if s.get("Sid").is_none() {
                continue;
            }
            for r in one_or_many(&s["Resource"]) {
                let (r_guard, r) = match r["Fn::If"].as_sequence() {
                    Some(b) => (b[0].as_str(), &b[1]),
                    None => (None, r),
                };
                let guarded_by = guard.or(r_guard);
                let n = match (location_of(r), location_of(&s["Condition"])) {
                    (Some(a), Some(b)) => {
                        assert_eq!(
                            a, b,
                            "{role_id}: a bucket listed under another location's folder"
                        );
                        a
                    }
                    (Some(n), None) | (None, Some(n)) => n,
                    (None, None) => continue,
                };
                let want = (n > 1).then(|| format!("BackupLocation{n}"));
                assert_eq!(
                    guarded_by.map(String::from),
                    want,
                    "{role_id}: a grant in location {n} must stand under {want:?}"
                );
                record(n, s, r);
            }
        }
        if grants[0].is_empty() {
            continue;
        }
        roles_with_locations += 1;
        for n in [2, 3] {
            assert_eq!(
                grants[n - 1],
                grants[0],
                "{role_id}: location {n} must get exactly location 1's rights"
            );
        }
    }
    assert!(
        roles_with_locations >= 8,
        "{roles_with_locations} roles reach the backups"
    );
}

/// A second or third location is a bucket and a folder, or nothing: the template's rules refuse
/// one without the other, and the folder is one folder.
#[test]
fn a_second_or_third_location_is_a_bucket_with_its_folder_or_nothing() {
    let t = template();
    for n in [2u8, 3] {
        let [bucket, prefix] = location_params(n);
        assert_eq!(t["Parameters"][&bucket]["Default"].as_str(), Some(""));
        assert_eq!(t["Parameters"][&prefix]["Default"].as_str(), Some(""));
        assert!(allowed(&t, &bucket).is_match("my-second-bucket"));
        let re = allowed(&t, &prefix);
        assert!(re.is_match("") && re.is_match("tidb/") && !re.is_match("tidb"));
        let rules: Vec<&Value> = t["Rules"]
            .as_mapping()
            .unwrap()
            .values()
            .filter(|r| {
                serde_yaml::to_string(r)
                    .unwrap()
                    .contains(&format!("Ref: {prefix}"))
            })
            .collect();
        assert_eq!(rules.len(), 1, "one rule for {bucket} with {prefix}");
        let assertion = &rules[0]["Assertions"][0]["Assert"];
        for (b, p, ok) in [
            ("", "", true),
            ("second", "tidb/", true),
            ("second", "", false),
            ("", "tidb/", false),
        ] {
            let params = [(bucket.as_str(), b), (prefix.as_str(), p)];
            assert_eq!(
                holds(&t, &params, assertion),
                Some(ok),
                "{bucket}={b:?} {prefix}={p:?}"
            );
        }
    }
}
