//! A stopped deletion: its backup marked `CleanFailed`, never left `Deleting`.

use crate::backup::status::VolumeBackupDoc;
use crate::backup::steps::AbortReport;
use crate::backup::steps::Env;
use crate::catalog::Catalog;
use crate::delete::spec::DeleteRequest;
use crate::error::StepError;
use crate::member::cond;
use crate::ports::ObjectStore;
use chrono::Utc;

/// A deletion execution that was stopped or timed out (or failed outside its own failure path,
/// which records `CleanFailed` itself): its catalog record must not stay `Deleting`, which would
/// refuse every later deletion and stop retention of its schedule. Marks it `CleanFailed` with
/// the failure name; harmless for other executions.
pub async fn abort<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    event: &crate::execution::ExecutionStatusChange,
) -> Result<AbortReport, StepError> {
    let d = &event.detail;
    let (failure_name, req) =
        match d.ended_request("a deletion request", |v| DeleteRequest::from_value(v).ok()) {
            Ok(ended) => ended,
            Err(detail) => return Ok(AbortReport::nothing(detail)),
        };
    let catalog: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
    let Some((doc, _)) = catalog.get(&req.namespace, &req.name).await? else {
        return Ok(AbortReport::nothing(format!(
            "{}/{} is not in the catalog",
            req.namespace, req.name
        )));
    };
    let deleting = doc
        .brfed
        .deletion
        .as_ref()
        .is_some_and(|x| x.execution == d.execution_arn && x.state == "Deleting");
    if !deleting {
        return Ok(AbortReport::nothing(format!(
            "{}/{} is not being deleted by {}",
            req.namespace, req.name, d.execution_arn
        )));
    }
    let message = format!(
        "deletion execution {} ended {}{}; some members may still be cleaning up: delete the backup again",
        d.execution_arn,
        d.status,
        d.cause
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default()
    );
    let arn = d.execution_arn.clone();
    catalog
        .update(&req.namespace, &req.name, |doc| {
            let Some(x) = doc.brfed.deletion.as_mut() else {
                return false;
            };
            if x.execution != arn || x.state != "Deleting" {
                return false;
            }
            x.state = "CleanFailed".into();
            doc.status.progress.set_condition(
                cond::CLEAN_FAILED,
                Some(failure_name),
                Some(&message),
                Utc::now(),
            );
            true
        })
        .await?;
    Ok(crate::backup::steps::AbortReport {
        action: "marked-clean-failed".into(),
        detail: format!("{}/{}: {failure_name}", req.namespace, req.name),
        teardown: None,
    })
}
