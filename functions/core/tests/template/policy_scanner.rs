//! The policy scanner's configuration (`infra/aws/.checkov.yaml`).

use super::*;

/// `make lint` runs checkov with `infra/aws/.checkov.yaml`: every check it skips is listed there
/// with its reason on the same line, and the scan covers this template, offline.
#[test]
fn every_check_the_policy_scanner_skips_says_why() {
    let path = root().join("infra/aws/.checkov.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config: Value = serde_yaml::from_str(&text).expect("infra/aws/.checkov.yaml is YAML");
    assert_eq!(
        one_or_many(&config["file"])
            .into_iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>(),
        ["infra/aws/template.yaml"],
        "the scan covers the template"
    );
    assert_eq!(
        one_or_many(&config["framework"])
            .into_iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>(),
        ["cloudformation"]
    );
    assert_eq!(
        config["skip-download"].as_bool(),
        Some(true),
        "the scan runs offline"
    );
    let skipped: BTreeSet<&str> = one_or_many(&config["skip-check"])
        .into_iter()
        .map(|c| c.as_str().expect("skip-check entries are check ids"))
        .collect();
    let mut explained = BTreeSet::new();
    for line in text.lines() {
        let Some(item) = line.trim_start().strip_prefix("- CKV_") else {
            continue;
        };
        let (id, reason) = item
            .split_once('#')
            .unwrap_or_else(|| panic!("skipped CKV_{item} has no reason on its line"));
        let id = format!("CKV_{}", id.trim());
        assert!(
            reason.split_whitespace().count() >= 8,
            "{id}: the reason for skipping it is too short to judge: {reason}"
        );
        explained.insert(id);
    }
    let skipped: BTreeSet<String> = skipped.into_iter().map(String::from).collect();
    assert_eq!(skipped, explained, "every skipped check has a reason");
}
