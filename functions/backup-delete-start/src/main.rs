//! Lambda `backup-delete-start`: check the backup can be deleted and take its deletion lock (refusing a second deletion by name), record the snapshot ids of every member (`backupmeta`), mark the snapshots the policy keeps as retained, and delete the member `Backup`s that are the backup's so each data plane cleans up per `cleanPolicy` (with `cleanPolicy: Retain` first where `backupmeta` lists snapshots that are not the backup's).

use brfed_adapters::{Runtime, lambda};
use brfed_core::delete;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: delete::steps::DeleteStartInput, _ctx| async move {
            delete::steps::start(&runtime.env(), runtime.volumes(), input).await
        },
    )
}
