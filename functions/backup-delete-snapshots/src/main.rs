//! Lambda `backup-delete-snapshots`: delete the snapshots and objects of members whose data plane is gone, paced to the deletion rate with throttling backoff; resumable.

use brfed_adapters::{Runtime, lambda};
use brfed_core::delete;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: delete::DeleteStepInput, _ctx| {
        let runtime = runtime.clone();
        async move {
            delete::delete_snapshots(&runtime.env(), runtime.volumes(), input, runtime.pacing())
                .await
        }
    })
    .await
}
