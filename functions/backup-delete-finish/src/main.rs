//! Lambda `backup-delete-finish`: verify with EC2 and S3 that what `cleanPolicy` deletes is gone, then remove the catalog record (`Cleaned`) or keep it with `CleanFailed` and what remains.

use brfed_adapters::{Runtime, lambda};
use brfed_core::delete;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: delete::DeleteStepInput, _ctx| {
        let runtime = runtime.clone();
        async move { delete::finish(&runtime.env(), runtime.volumes(), input).await }
    })
    .await
}
