//! [`Rules`] on EventBridge (the default bus).

use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::{
    DeadLetterConfig, InputTransformer, RetryPolicy, RuleState, Target,
};
use brfed_core::StepError;
use brfed_core::ports::{Rules, ScheduleRule};

/// Id of the one target of a schedule rule.
pub const TICK_TARGET_ID: &str = "schedule-tick";

/// EventBridge's most persistent delivery: what the template gives the abort and sweep rules'
/// targets (185 attempts over 24 h), so that a tick EventBridge cannot deliver waits out an
/// outage of Lambda before it goes to the dead-letter queue.
const RETRY_ATTEMPTS: i32 = 185;
const RETRY_MAX_AGE_SECONDS: i32 = 86_400;

/// EventBridge schedule rules.
#[derive(Clone, Debug)]
pub struct EventBridgeRules {
    client: aws_sdk_eventbridge::Client,
    dead_letter: Option<String>,
}

impl EventBridgeRules {
    /// From the shared AWS config; targets without a dead-letter queue (see
    /// [`Self::with_dead_letter`]).
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(sdk),
            dead_letter: None,
        }
    }

    /// Targets get EventBridge's retry policy (185 attempts, 24 h) and the SQS queue `arn` (the
    /// stack's safety-net queue, output `SafetyNetQueueArn`) as their dead-letter queue.
    pub fn with_dead_letter(mut self, arn: impl Into<String>) -> Self {
        self.dead_letter = Some(arn.into());
        self
    }
}

fn unavailable(what: &str, e: impl ProvideErrorMetadata + std::fmt::Debug) -> StepError {
    StepError::EventBridgeUnavailable(format!(
        "{what}: {}",
        e.message()
            .map(String::from)
            .unwrap_or_else(|| format!("{e:?}"))
    ))
}

fn not_found(code: Option<&str>) -> bool {
    code == Some("ResourceNotFoundException")
}

/// The answer to a call on one rule: `true` when it was made, `false` when the rule does not
/// exist, `EventBridgeUnavailable` naming `what` otherwise.
fn found<T, E: ProvideErrorMetadata + std::fmt::Debug>(
    sent: Result<T, E>,
    what: &str,
) -> Result<bool, StepError> {
    match sent {
        Ok(_) => Ok(true),
        Err(e) if not_found(e.code()) => Ok(false),
        Err(e) => Err(unavailable(what, e)),
    }
}

impl Rules for EventBridgeRules {
    async fn put(&self, rule: &ScheduleRule) -> Result<(), StepError> {
        self.client
            .put_rule()
            .name(&rule.name)
            .schedule_expression(&rule.expression)
            .state(if rule.enabled {
                RuleState::Enabled
            } else {
                RuleState::Disabled
            })
            .description(&rule.description)
            .send()
            .await
            .map_err(|e| unavailable(&format!("PutRule {}", rule.name), e))?;
        let transformer = InputTransformer::builder()
            .input_paths_map("time", "$.time")
            .input_template(&rule.input_template)
            .build()
            .map_err(|e| StepError::Internal(e.to_string()))?;
        let mut target = Target::builder()
            .id(TICK_TARGET_ID)
            .arn(&rule.target_arn)
            .input_transformer(transformer);
        if let Some(queue) = &self.dead_letter {
            target = target
                .retry_policy(
                    RetryPolicy::builder()
                        .maximum_retry_attempts(RETRY_ATTEMPTS)
                        .maximum_event_age_in_seconds(RETRY_MAX_AGE_SECONDS)
                        .build(),
                )
                .dead_letter_config(DeadLetterConfig::builder().arn(queue).build());
        }
        let target = target
            .build()
            .map_err(|e| StepError::Internal(e.to_string()))?;
        let out = self
            .client
            .put_targets()
            .rule(&rule.name)
            .targets(target)
            .send()
            .await
            .map_err(|e| unavailable(&format!("PutTargets {}", rule.name), e))?;
        if out.failed_entry_count() > 0 {
            return Err(StepError::EventBridgeUnavailable(format!(
                "PutTargets {}: {:?}",
                rule.name,
                out.failed_entries()
            )));
        }
        Ok(())
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<bool, StepError> {
        if enabled {
            let sent = self.client.enable_rule().name(name).send().await;
            found(sent, &format!("EnableRule {name}"))
        } else {
            let sent = self.client.disable_rule().name(name).send().await;
            found(sent, &format!("DisableRule {name}"))
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, StepError> {
        match self
            .client
            .remove_targets()
            .rule(name)
            .ids(TICK_TARGET_ID)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(e.code()) => return Ok(false),
            Err(e) => return Err(unavailable(&format!("RemoveTargets {name}"), e)),
        }
        let sent = self.client.delete_rule().name(name).send().await;
        found(sent, &format!("DeleteRule {name}"))
    }
}
