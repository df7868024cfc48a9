//! Every function and state machine logs to its own log group, kept for the retention
//! parameter; no state machine logs execution data.

use super::*;

#[test]
fn every_function_and_state_machine_logs_to_its_own_log_group_with_the_retention_parameter() {
    let t = template();
    let check = |lg_id: &str, name: &str| {
        let lg = resource(&t, lg_id);
        assert_eq!(lg["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{lg_id}");
        assert_eq!(
            ref_of(&lg["Properties"]["RetentionInDays"]),
            Some("LogRetentionDays"),
            "{lg_id}: retention"
        );
        assert_eq!(
            sub_text(&lg["Properties"]["LogGroupName"]),
            Some(name),
            "{lg_id}"
        );
    };
    for krate in function_crates() {
        let id = function_id(&krate);
        let lg = ref_of(&resource(&t, &id)["Properties"]["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| {
                panic!("{id}: LoggingConfig.LogGroup must be a log group of the template")
            });
        check(lg, &format!("/aws/lambda/${{NamePrefix}}-{krate}"));
        // JSON: Lambda sets AWS_LAMBDA_LOG_FORMAT=JSON and `lambda::init_tracing` writes one
        // flat JSON object per line, with the execution and cluster (docs/signals.md).
        assert_eq!(
            resource(&t, &id)["Properties"]["LoggingConfig"]["LogFormat"].as_str(),
            Some("JSON"),
            "{id}: LoggingConfig.LogFormat"
        );
    }
    for (file, _, id, sm) in state_machines(&t) {
        let dest = &sm["Properties"]["LoggingConfiguration"]["Destinations"][0];
        let lg = get_att(&dest["CloudWatchLogsLogGroup"]["LogGroupArn"], "Arn")
            .unwrap_or_else(|| panic!("{id}: logs to no log group of the template"));
        let stem = file.trim_end_matches(".asl.json");
        check(
            lg,
            &format!("/aws/vendedlogs/states/${{NamePrefix}}-{stem}"),
        );
    }
}

#[test]
fn no_state_machine_logs_execution_data() {
    let t = template();
    for (_, _, id, sm) in state_machines(&t) {
        let include = &sm["Properties"]["LoggingConfiguration"]["IncludeExecutionData"];
        assert!(
            include.is_null() || include.as_bool() == Some(false),
            "{id}: IncludeExecutionData would log the VolumeBackup's template (env values) with every transition"
        );
    }
}
