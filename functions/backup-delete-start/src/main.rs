//! Lambda `backup-delete-start`: check the backup can be deleted, record the snapshot ids of every member (`backupmeta`) and the deletion in the catalog, and delete the member `Backup`s so each data plane cleans up per `cleanPolicy`.

use brfed_adapters::{Runtime, lambda};
use brfed_core::delete;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: delete::DeleteStartInput, _ctx| {
        let runtime = runtime.clone();
        async move { delete::start(&runtime.env(), input).await }
    })
    .await
}
