//! Every ASL placeholder is supplied by its state machine's substitutions and nothing extra is;
//! each state machine's role invokes exactly the functions its definition uses.

use super::*;

fn placeholders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let end = after.find('}').expect("an unclosed ${ in an ASL file");
        out.insert(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

#[test]
fn every_placeholder_of_every_state_machine_is_supplied_and_nothing_extra() {
    let t = template();
    for (file, text, id, sm) in state_machines(&t) {
        let wanted = placeholders(&text);
        let supplied: BTreeSet<String> = substitutions(sm)
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect();
        let missing: Vec<_> = wanted.difference(&supplied).collect();
        let extra: Vec<_> = supplied.difference(&wanted).collect();
        assert!(
            missing.is_empty(),
            "{id} ({file}): not supplied: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "{id} ({file}): supplied but unused: {extra:?}"
        );
    }
}

#[test]
fn every_function_arn_substitution_is_the_arn_of_the_crate_it_names() {
    let t = template();
    let crates = function_crates();
    for (_, _, id, sm) in state_machines(&t) {
        for (k, v) in substitutions(sm) {
            let Some(camel_name) = k.strip_suffix("FunctionArn") else {
                continue;
            };
            let krate = crates
                .iter()
                .find(|c| camel(c) == camel_name)
                .unwrap_or_else(|| panic!("{id}: ${{{k}}} names no function crate"));
            assert_eq!(
                get_att(v, "Arn"),
                Some(function_id(krate).as_str()),
                "{id}: ${{{k}}} must be the Arn of {}",
                function_id(krate)
            );
        }
    }
}

#[test]
fn every_state_machine_role_invokes_exactly_the_functions_its_definition_uses() {
    let t = template();
    for (file, _, id, sm) in state_machines(&t) {
        let p = &sm["Properties"];
        let used: BTreeSet<String> = substitutions(sm)
            .into_iter()
            .filter_map(|(_, v)| get_att(v, "Arn"))
            .filter(|r| resource(&t, r)["Type"].as_str() == Some("AWS::Lambda::Function"))
            .map(str::to_string)
            .collect();
        let role_id = get_att(&p["RoleArn"], "Arn")
            .unwrap_or_else(|| panic!("{id}: RoleArn must be the Arn of a role of the template"));
        let mut invoked = BTreeSet::new();
        for s in statements(resource(&t, role_id)) {
            let actions: Vec<_> = one_or_many(&s["Action"])
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                !actions
                    .iter()
                    .any(|a| *a == "*" || a.starts_with("lambda:*")),
                "{role_id}: wildcard action"
            );
            if actions.contains(&"lambda:InvokeFunction") {
                for r in statement_resources(s) {
                    let f = get_att(r, "Arn").unwrap_or_else(|| {
                        panic!("{role_id}: lambda:InvokeFunction on something not a function of the template: {r:?}")
                    });
                    invoked.insert(f.to_string());
                }
            }
        }
        assert_eq!(
            invoked, used,
            "{role_id} must invoke exactly the functions of {file}"
        );
    }
}
