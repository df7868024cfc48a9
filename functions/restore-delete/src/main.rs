//! Lambda `restore-delete`: delete a `VolumeRestore` (`{"name", "namespace"}`), invoked synchronously by `brfed restore delete` or `aws lambda invoke`: its member `Restore`s that carry its execution (never a volume, PV or TidbCluster), then its catalog record, so that the name can be restored again (`docs/restore.md`, "Delete a restore").

use brfed_adapters::{Runtime, lambda};
use brfed_core::restore;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: restore::steps::RestoreDeleteInput, _ctx| async move {
            let out = restore::steps::delete(&runtime.env(), runtime.executions(), input).await?;
            tracing::info!(restore = %format!("{}/{}", out.namespace, out.name), result = %out.result, deleted = ?out.members_deleted, foreign = ?out.foreign_members, "restore deleted");
            Ok(out)
        },
    )
}
