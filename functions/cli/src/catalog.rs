//! Reading the catalog (`brfed/catalog/...` in S3): one document by name, or every document of a
//! kind in a namespace or in all.

use crate::error::CliError;
use crate::render::note;
use brfed_core::catalog::{CATALOG_PREFIX, Catalog, CatalogDoc};
use brfed_core::ports::ObjectStore;

/// The document `namespace/name` of type `D`, or `not_found` (e.g. `BackupNotFound`).
pub async fn get<S: ObjectStore, D: CatalogDoc>(
    store: &S,
    bucket: &str,
    namespace: &str,
    name: &str,
    kind: &str,
    not_found: &str,
) -> Result<D, CliError> {
    Catalog::<S, D>::new(store, bucket)
        .get(namespace, name)
        .await?
        .map(|(d, _)| d)
        .ok_or_else(|| {
            CliError::failed(
                not_found,
                format!(
                    "{kind} {namespace}/{name} is not in the catalog (s3://{bucket}/{})",
                    D::key_of(namespace, name)
                ),
            )
        })
}

/// The document `namespace/name`, `None` when there is none.
pub async fn find<S: ObjectStore, D: CatalogDoc>(
    store: &S,
    bucket: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<D>, CliError> {
    Ok(Catalog::<S, D>::new(store, bucket)
        .get(namespace, name)
        .await?
        .map(|(d, _)| d))
}

/// Every document of `collection` (`volumebackups`, `volumerestores`, ...) in `namespace` (all
/// namespaces with `None`), sorted by namespace and name. An unreadable document is skipped with
/// a note on stderr.
pub async fn list<S: ObjectStore, D: CatalogDoc>(
    store: &S,
    bucket: &str,
    collection: &str,
    namespace: Option<&str>,
) -> Result<Vec<D>, CliError> {
    let prefix = match namespace {
        Some(ns) => format!("{CATALOG_PREFIX}/{collection}/{ns}/"),
        None => format!("{CATALOG_PREFIX}/{collection}/"),
    };
    let mut out = Vec::new();
    for key in store.list_keys(bucket, &prefix).await? {
        if !key.ends_with(".json") {
            continue;
        }
        let Some(v) = store.get_json(bucket, &key).await? else {
            continue; // deleted since the listing
        };
        match serde_json::from_value::<D>(v.value) {
            Ok(d) => out.push(d),
            Err(e) => note(&format!(
                "warning: s3://{bucket}/{key} is not a readable document, skipped: {e}"
            )),
        }
    }
    out.sort_by(|a, b| a.id().cmp(&b.id()));
    Ok(out)
}
