//! Lambda `backup-delete-observe`: watch the member `Backup`s until every data plane has cleaned up (they are gone), one is `CleanFailed`, or the deadline passed.

use brfed_adapters::{Runtime, lambda};
use brfed_core::delete;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: delete::steps::DeleteStepInput, _ctx| {
        let runtime = runtime.clone();
        async move { delete::steps::observe(&runtime.env(), input).await }
    })
    .await
}
