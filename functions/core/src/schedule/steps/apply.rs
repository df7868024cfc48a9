//! Schedule management (what the CLI calls): apply, pause, resume, remove, get. A schedule is a
//! catalog document plus one EventBridge rule whose target is `schedule-tick`.

use crate::schedule::steps::context::SchedulerEnv;

use crate::catalog::DocMeta;
use crate::error::StepError;
use crate::input::FEDERATION_API_VERSION;
use crate::ports::ObjectStore;
use crate::ports::Rules;
use crate::ports::ScheduleRule;
use crate::schedule::spec::SCHEDULE_KIND;
use crate::schedule::spec::ScheduleRequest;
use crate::schedule::spec::rule_name;
use crate::schedule::status::ScheduleDoc;
use crate::schedule::status::ScheduleRecord;
use crate::schedule::status::ScheduleStatus;
use crate::schedule::status::schedule_key;
use crate::time::rfc3339;
use chrono::Utc;
use serde_json::json;
use std::collections::HashSet;

/// The options a schedule document records: none when they are the defaults.
fn recorded_options(request: &ScheduleRequest) -> Option<crate::backup::spec::Options> {
    (request.options != crate::backup::spec::Options::default()).then(|| request.options.clone())
}

/// Target input of a schedule rule: the schedule, and the event's time. The placeholder is
/// quoted: EventBridge then puts the string value inside those quotes.
pub fn tick_input_template(namespace: &str, name: &str) -> String {
    json!({"namespace": namespace, "name": name, "time": "<time>"}).to_string()
}

/// Creates or updates a schedule from the user's `VolumeBackupSchedule` (validated, every
/// problem at once, before anything is written), then its rule. The status is kept on update.
pub async fn apply<S: ObjectStore, X, R: Rules>(
    env: &SchedulerEnv<'_, S, X>,
    rules: &R,
    tick_function_arn: &str,
    request: &ScheduleRequest,
    known_clusters: Option<&HashSet<String>>,
) -> Result<ScheduleDoc, StepError> {
    request.validate(known_clusters)?;
    let expression = request
        .eventbridge_schedule()
        .map_err(|e| StepError::InvalidSpec(format!("spec.schedule: {e}")))?
        .expression();
    let (ns, name) = (
        request.metadata.namespace.clone(),
        request.metadata.name.clone(),
    );
    let rule = rule_name(&ns, &name);
    let schedules = env.schedules();
    let doc = match schedules.get(&ns, &name).await? {
        None => {
            let doc = ScheduleDoc {
                api_version: FEDERATION_API_VERSION.into(),
                kind: SCHEDULE_KIND.into(),
                metadata: DocMeta {
                    meta: request.metadata.clone(),
                    creation_timestamp: Some(rfc3339(Utc::now())),
                },
                spec: request.spec.clone(),
                status: ScheduleStatus::default(),
                brfed: ScheduleRecord {
                    rule: rule.clone(),
                    expression: expression.clone(),
                    options: recorded_options(request),
                },
            };
            schedules.create(&doc).await?
        }
        Some(_) => {
            schedules
                .update(&ns, &name, |d| {
                    d.metadata.meta = request.metadata.clone();
                    d.spec = request.spec.clone();
                    d.brfed = ScheduleRecord {
                        rule: rule.clone(),
                        expression: expression.clone(),
                        options: recorded_options(request),
                    };
                    true
                })
                .await?
        }
    };
    rules
        .put(&ScheduleRule {
            name: rule,
            expression,
            enabled: !doc.spec.pause,
            description: format!(
                "brfed VolumeBackupSchedule {ns}/{name}: {}",
                doc.spec.schedule
            ),
            target_arn: tick_function_arn.into(),
            input_template: tick_input_template(&ns, &name),
        })
        .await?;
    Ok(doc)
}

/// Pauses (`true`) or resumes a schedule: `spec.pause` and the rule's state.
pub async fn set_paused<S: ObjectStore, X, R: Rules>(
    env: &SchedulerEnv<'_, S, X>,
    rules: &R,
    namespace: &str,
    name: &str,
    paused: bool,
) -> Result<ScheduleDoc, StepError> {
    let schedules = env.schedules();
    if schedules.get(namespace, name).await?.is_none() {
        return Err(StepError::ScheduleNotFound(format!("{namespace}/{name}")));
    }
    let doc = schedules
        .update(namespace, name, |d| {
            let change = d.spec.pause != paused;
            d.spec.pause = paused;
            change
        })
        .await?;
    if !rules.set_enabled(&doc.brfed.rule, !paused).await? {
        return Err(StepError::EventBridgeUnavailable(format!(
            "rule {} of schedule {namespace}/{name} does not exist; apply the schedule again",
            doc.brfed.rule
        )));
    }
    Ok(doc)
}

/// Deletes a schedule: its rule, then its document. Its backups stay (unlike the original,
/// whose owner references delete them all, reference §10 item 10); delete them by name.
pub async fn remove<S: ObjectStore, X, R: Rules>(
    env: &SchedulerEnv<'_, S, X>,
    rules: &R,
    namespace: &str,
    name: &str,
) -> Result<ScheduleDoc, StepError> {
    let (doc, _) = env
        .schedules()
        .get(namespace, name)
        .await?
        .ok_or_else(|| StepError::ScheduleNotFound(format!("{namespace}/{name}")))?;
    rules.delete(&doc.brfed.rule).await?;
    env.store
        .delete_object(env.catalog_bucket, &schedule_key(namespace, name))
        .await?;
    Ok(doc)
}

/// Reads a schedule document (for `get`).
pub async fn get<S: ObjectStore, X>(
    env: &SchedulerEnv<'_, S, X>,
    namespace: &str,
    name: &str,
) -> Result<ScheduleDoc, StepError> {
    env.schedules()
        .get(namespace, name)
        .await?
        .map(|(d, _)| d)
        .ok_or_else(|| StepError::ScheduleNotFound(format!("{namespace}/{name}")))
}
