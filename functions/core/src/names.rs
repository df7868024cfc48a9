//! Naming rules shared by every step: member object names, S3 prefixes, label keys.

/// Maximum length of a Kubernetes label value, and of the Job name the data plane derives from
/// a member name (`backup-{member}-init`, `restore-data-{member}`), see reference §10 item 23.
pub const MAX_LABEL_VALUE: usize = 63;

/// Label put on every member object brfed creates: the federated backup's name.
pub const LABEL_VOLUME_BACKUP: &str = "brfed.io/volume-backup";
/// Annotation with the namespace of the federated object a member belongs to.
pub const ANNOTATION_FEDERATION_NAMESPACE: &str = "brfed.io/federation-namespace";
/// Annotation with the Step Functions execution that created the member (idempotency key).
pub const ANNOTATION_EXECUTION: &str = "brfed.io/execution";
/// Label marking objects managed by brfed.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "brfed";

/// Name of the data-plane `Backup` of a federated backup: `fed-{name}`, the same in every data plane.
pub fn member_backup_name(volume_backup: &str) -> String {
    format!("fed-{volume_backup}")
}

/// Longest Step Functions execution name.
pub const MAX_EXECUTION_NAME: usize = 80;

/// Step Functions execution name of the federated object `namespace/name` (a backup, a
/// restore): `{namespace}.{name}`. A namespace is a DNS label, so the first dot separates the
/// two and names that repeat across namespaces stay apart. Past 80 characters it is cut to 71
/// and followed by `-` and 8 hex digits of the SHA-256 of `namespace/name`, so it stays
/// deterministic (a repeated start is still a no-op) and distinct.
pub fn execution_name(namespace: &str, name: &str) -> String {
    fitted(namespace, name, MAX_EXECUTION_NAME)
}

/// `{namespace}.{name}` in at most `room` characters: as it is when it fits, else cut to
/// `room - 9` and followed by `-` and 8 hex digits of the SHA-256 of `namespace/name`.
fn fitted(namespace: &str, name: &str, room: usize) -> String {
    let full = format!("{namespace}.{name}");
    if full.len() <= room {
        return full;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    // Every character of a namespace and a Kubernetes name is ASCII: cutting at a byte is safe.
    let cut = full[..room - 9].trim_end_matches(['.', '-']);
    format!("{cut}-{hex}")
}

/// Step Functions execution name of generation `generation` of restore `namespace/name`: the
/// first is [`execution_name`]; after a deletion of the restore (`brfed restore delete`) the
/// name is taken for 90 days (Step Functions refuses a second execution of a closed name), so
/// the next restore of that name is `{namespace}.{name}_{generation}`, cut and hashed as in
/// [`execution_name`] so that the whole stays within 80 characters. No Kubernetes name has an
/// `_`, so it never is another restore's name. The generation comes from the catalog
/// ([`crate::restore::status::RestoreGeneration`]): two starts of one re-created restore get the
/// same name, so a repeated start stays a no-op.
pub fn restore_execution_name(namespace: &str, name: &str, generation: u32) -> String {
    if generation <= 1 {
        return execution_name(namespace, name);
    }
    let suffix = format!("_{generation}");
    let body = fitted(namespace, name, MAX_EXECUTION_NAME - suffix.len());
    format!("{body}{suffix}")
}

/// The state machine ARN and execution name of execution ARN `arn` (the inverse of
/// [`execution_arn`]); `None` when it is not one.
pub fn split_execution_arn(arn: &str) -> Option<(String, String)> {
    let (head, name) = arn.rsplit_once(':')?;
    if name.is_empty() || !head.contains(":execution:") {
        return None;
    }
    Some((
        head.replacen(":execution:", ":stateMachine:", 1),
        name.to_string(),
    ))
}

/// Step Functions execution name of a deletion of backup `namespace/name` asked at `at`,
/// whatever asks it (`brfed backup delete`, the retention sweep, the documented AWS CLI command):
/// `delete-{namespace}.{name}-{at as YYYYMMDDTHHMMSSZ}`, the `{namespace}.{name}` part cut and
/// hashed as in [`execution_name`] so that the whole stays within 80 characters. A backup may be
/// deleted again later (after a `CleanFailed`), so the time is part of it; a repeated start for
/// the same time (a redelivered sweep event) is the same execution. That two deletions never run
/// at once is not the name's job but the catalog's deletion lock (`docs/safety.md`).
pub fn deletion_execution_name(
    namespace: &str,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    const HEAD: &str = "delete-";
    let stamp = at.format("%Y%m%dT%H%M%SZ").to_string();
    let room = MAX_EXECUTION_NAME - HEAD.len() - 1 - stamp.len();
    format!("{HEAD}{}-{stamp}", fitted(namespace, name, room))
}

/// ARN of execution `name` of state machine `state_machine` (Step Functions' own formula:
/// `...:stateMachine:<machine>` becomes `...:execution:<machine>:<name>`).
pub fn execution_arn(state_machine: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// Name of the data-plane init Job the operator derives from a member name (`backup-{member}-init`).
pub fn init_job_name(member: &str) -> String {
    format!("backup-{member}-init")
}

/// Member S3 prefix: `{template prefix}-{k8sClusterName}` (reference §2.4).
pub fn member_prefix(template_prefix: &str, k8s_cluster_name: &str) -> String {
    format!("{template_prefix}-{k8s_cluster_name}")
}

/// `s3://bucket/prefix` as the data plane reports it in `status.backupPath`.
pub fn s3_path(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}")
}

/// Whether `s` is a valid RFC 1123 DNS label (lowercase alphanumerics and '-', at most 63,
/// starting and ending with an alphanumeric).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a valid RFC 1123 DNS subdomain (object names): labels joined by '.', at most 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_follow_the_original() {
        assert_eq!(
            member_backup_name("daily-2024-05-01t00-00-00"),
            "fed-daily-2024-05-01t00-00-00"
        );
        assert_eq!(
            member_prefix("tidb-prod/-2024-05-01t00-00-00", "az-a"),
            "tidb-prod/-2024-05-01t00-00-00-az-a"
        );
        assert_eq!(init_job_name("fed-x"), "backup-fed-x-init");
    }

    #[test]
    fn execution_names_keep_namespaces_apart() {
        assert_eq!(execution_name("team-a", "nightly-x"), "team-a.nightly-x");
        assert_ne!(
            execution_name("team-a", "nightly-x"),
            execution_name("team-b", "nightly-x")
        );
        let ns = "n".repeat(63);
        let (one, two) = (
            execution_name(&ns, &format!("{}1", "x".repeat(40))),
            execution_name(&ns, &format!("{}2", "x".repeat(40))),
        );
        assert!(one.len() <= MAX_EXECUTION_NAME && two.len() <= MAX_EXECUTION_NAME);
        assert_ne!(one, two);
        assert_eq!(one, execution_name(&ns, &format!("{}1", "x".repeat(40))));
    }

    #[test]
    fn deletion_names_carry_the_namespace_and_fit_step_functions() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-05-01T02:03:04Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            deletion_execution_name("team-a", "nightly-x", at),
            "delete-team-a.nightly-x-20260501T020304Z"
        );
        assert_ne!(
            deletion_execution_name("team-a", "nightly-x", at),
            deletion_execution_name("team-b", "nightly-x", at)
        );
        let ns = "n".repeat(63);
        let long = |i: u8| deletion_execution_name(&ns, &format!("{}{i}", "x".repeat(200)), at);
        assert!(long(1).len() <= MAX_EXECUTION_NAME, "{}", long(1));
        assert_ne!(long(1), long(2));
        assert_eq!(long(1), long(1));
        assert!(long(1).ends_with("-20260501T020304Z"));
    }

    #[test]
    fn a_recreated_restore_gets_a_name_no_restore_has_and_step_functions_takes() {
        assert_eq!(restore_execution_name("br", "r1", 0), "br.r1");
        assert_eq!(restore_execution_name("br", "r1", 1), "br.r1");
        assert_eq!(restore_execution_name("br", "r1", 2), "br.r1_2");
        assert_eq!(restore_execution_name("br", "r1", 12), "br.r1_12");
        // `r1-2` is another restore; `_` is in no Kubernetes name.
        assert_ne!(
            restore_execution_name("br", "r1", 2),
            execution_name("br", "r1-2")
        );
        let ns = "n".repeat(63);
        for name in ["x".repeat(16), "x".repeat(17), "x".repeat(200)] {
            let n = restore_execution_name(&ns, &name, 3);
            assert!(n.len() <= MAX_EXECUTION_NAME, "{n}");
            assert!(n.ends_with("_3"), "{n}");
            assert_ne!(n, restore_execution_name(&ns, &name, 4));
            assert_eq!(n, restore_execution_name(&ns, &name, 3), "deterministic");
        }
        assert_ne!(
            restore_execution_name(&ns, &"x".repeat(200), 2),
            restore_execution_name(&ns, &format!("{}y", "x".repeat(199)), 2)
        );
    }

    #[test]
    fn an_execution_arn_splits_into_its_state_machine_and_name() {
        let sm = "arn:aws:states:us-west-2:123456789012:stateMachine:volume-restore";
        let arn = execution_arn(sm, "br.r1_2");
        assert_eq!(
            split_execution_arn(&arn),
            Some((sm.to_string(), "br.r1_2".to_string()))
        );
        assert_eq!(split_execution_arn("exec-1"), None);
        assert_eq!(split_execution_arn(sm), None);
    }

    #[test]
    fn dns_rules_reject_what_kubernetes_rejects() {
        assert!(is_dns_label("dp1"));
        assert!(!is_dns_label("Dp1"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("a;rm -rf"));
    }
}
