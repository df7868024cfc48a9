//! What the CLI prints of every kind of catalog document, in one place. A kind (backups,
//! restores, schedules) says its columns ([`Kind`]) and, when an execution makes it, where it is
//! in the catalog, its progress line and its `describe` text ([`Run`]); `get`, `list`,
//! `describe` and `create [--wait]` below print every kind the same way.

use crate::args::{Output, WaitArgs};
use crate::config::Setting;
use crate::error::CliError;
use crate::render::{
    Column, Describe, age, document, emit, list_document, note, or_none, pairs, table, when,
};
use crate::{Ctx, catalog, wait};
use brfed_core::catalog::FederatedDoc;
use brfed_core::catalog::{CatalogDoc, DocMeta};
use brfed_core::conditions::Progress;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A kind of catalog document as `get` and `list` show it (`kubectl get`'s printer columns):
/// NAMESPACE (with `-A`), NAME, [`Kind::COLUMNS`], AGE, then with `-o wide` [`Kind::WIDE`].
pub trait Kind: CatalogDoc + 'static {
    /// The kind (`VolumeBackup`).
    const KIND: &'static str;
    /// The columns between NAME and AGE.
    const COLUMNS: &'static [Column<Self>];
    /// The `-o wide` columns, after AGE.
    const WIDE: &'static [Column<Self>];
    /// When it was accepted (RFC 3339): its AGE.
    fn created(&self) -> Option<&str>;
}

/// A kind an execution makes (backups, restores): read from the catalog by name, followed while
/// its execution runs, described.
pub trait Run: Kind {
    /// Its collection in the catalog (`volumebackups`).
    const COLLECTION: &'static str;
    /// The error of a name not in the catalog (`BackupNotFound`).
    const NOT_FOUND: &'static str;
    /// The error of a `create` whose execution exists already (`BackupExists`).
    const EXISTS: &'static str;
    /// The progress line while its execution runs.
    fn progress(&self) -> String;
    /// `describe`: everything the catalog knows of it.
    fn describe_text(&self, now: DateTime<Utc>) -> String;
}

/// The table of `docs` (`-o wide`: with the wide columns).
pub fn table_of<K: Kind>(
    docs: &[K],
    output: Output,
    all_namespaces: bool,
    now: DateTime<Utc>,
) -> String {
    let wide: &[Column<K>] = if output == Output::Wide { K::WIDE } else { &[] };
    let mut headers: Vec<&str> = Vec::new();
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.push("NAME");
    headers.extend(K::COLUMNS.iter().map(|(header, _)| *header));
    headers.push("AGE");
    headers.extend(wide.iter().map(|(header, _)| *header));
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            let (namespace, name) = d.id();
            let mut row = Vec::new();
            if all_namespaces {
                row.push(namespace.to_string());
            }
            row.push(name.to_string());
            row.extend(K::COLUMNS.iter().map(|(_, cell)| cell(d)));
            row.push(age(d.created(), now));
            row.extend(wide.iter().map(|(_, cell)| cell(d)));
            row
        })
        .collect();
    table(&headers, &rows)
}

/// `get`: the document with `-o json|yaml`, else its row.
pub fn print_one<K: Kind>(doc: &K, output: Output) -> Result<(), CliError> {
    emit(&if output.is_document() {
        document(doc, output)?
    } else {
        table_of(std::slice::from_ref(doc), output, false, Utc::now())
    });
    Ok(())
}

/// `list` of `namespace` (`None`: all namespaces): one `List` document with `-o json|yaml`,
/// else the table, or kubectl's note on stderr when there is nothing.
pub fn print_list<K: Kind>(
    docs: &[K],
    output: Output,
    namespace: Option<&str>,
) -> Result<(), CliError> {
    if output.is_document() {
        emit(&list_document(docs, output)?);
    } else if docs.is_empty() {
        note(&no_resources(namespace));
    } else {
        emit(&table_of(docs, output, namespace.is_none(), Utc::now()));
    }
    Ok(())
}

/// The `COMMITTS` column of a backup or a restore.
pub fn commit_ts<D: FederatedDoc>(d: &D) -> String {
    d.commit_ts().unwrap_or_default().to_string()
}

/// The `TIMETAKEN` column of a backup or a restore.
pub fn time_taken<D: FederatedDoc>(d: &D) -> String {
    d.time_taken().unwrap_or_default().to_string()
}

/// The `CLUSTERS` column (`-o wide`) of a backup or a restore: the members' data planes.
pub fn clusters<D: FederatedDoc>(d: &D) -> String {
    joined(d.clusters().into_iter().map(|(k8s, _)| k8s))
}

/// The cell of several names: `dp1,dp2`.
pub fn joined<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(",")
}

/// kubectl's note for an empty list.
pub fn no_resources(ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".into(),
    }
}

/// `describe` (and what `create --wait` ends with): the document with `-o json|yaml`, else its
/// `describe` text.
pub fn print_described<K: Run>(doc: &K, output: Output) -> Result<(), CliError> {
    emit(&if output.is_document() {
        document(doc, output)?
    } else {
        doc.describe_text(Utc::now())
    });
    Ok(())
}

/// The first lines of every kind's `describe`: its name, namespace, labels and annotations, when
/// it was accepted, and its execution.
pub fn describe_head(meta: &DocMeta, execution: &str, now: DateTime<Utc>) -> Describe {
    let mut d = Describe::new();
    d.field("Name", &meta.meta.name)
        .field("Namespace", &meta.meta.namespace)
        .field("Labels", pairs(&meta.meta.labels))
        .field("Annotations", pairs(&meta.meta.annotations))
        .field("Created", when(meta.creation_timestamp.as_deref(), now))
        .field("Execution", or_none(Some(execution)));
    d
}

/// The `Commit TS`, `Started`, `Completed` and `Time Taken` lines of a backup or a restore.
pub fn describe_progress<'d>(
    d: &'d mut Describe,
    p: &Progress,
    now: DateTime<Utc>,
) -> &'d mut Describe {
    d.field("Commit TS", or_none(p.commit_ts.as_deref()))
        .field("Started", when(p.time_started.as_deref(), now))
        .field("Completed", when(p.time_completed.as_deref(), now))
        .field("Time Taken", or_none(p.time_taken.as_deref()))
}

/// The document `-n NAME` of kind `K`, or `K::NOT_FOUND`.
async fn named<K: Run>(ctx: &Ctx, name: &str) -> Result<K, CliError> {
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    catalog::get(
        &aws.store,
        &bucket,
        ctx.namespace(),
        name,
        K::KIND,
        K::NOT_FOUND,
    )
    .await
}

/// `get NAME`.
pub async fn get<K: Run>(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    print_one(&named::<K>(ctx, name).await?, ctx.output)
}

/// `describe NAME`.
pub async fn describe<K: Run>(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    print_described(&named::<K>(ctx, name).await?, ctx.output)
}

/// `list [-A]`.
pub async fn list<K: Run>(ctx: &Ctx, all_namespaces: bool) -> Result<(), CliError> {
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    let ns = (!all_namespaces).then(|| ctx.namespace());
    let docs: Vec<K> = catalog::list(&aws.store, &bucket, K::COLLECTION, ns).await?;
    print_list(&docs, ctx.output, ns)
}

/// `create [--wait]` of `namespace/name`, its execution input `input` already read and
/// validated: starts the execution `execution` of `state_machine` (`{namespace}.{name}`, for a
/// re-created restore with its generation; a repeated create is refused by Step Functions,
/// `K::EXISTS`; the same name in another namespace is another one).
/// Without `--wait` it says so; with it, it follows the execution with the catalog document's
/// progress line, prints the document at the end ([`print_described`]) and fails as the
/// execution did ([`finished`]).
pub async fn create<K: Run>(
    ctx: &Ctx,
    state_machine: Setting,
    (ns, name): (&str, &str),
    execution: &str,
    input: &Value,
    w: WaitArgs,
) -> Result<(), CliError> {
    let state_machine = ctx.settings.require(state_machine)?;
    let bucket = if w.wait { Some(ctx.bucket()?) } else { None };
    let aws = ctx.aws().await;
    let arn = wait::start(&aws.executions, &state_machine, execution, input, K::EXISTS).await?;
    let what = format!("{} {ns}/{name}", K::KIND.to_lowercase());
    let Some(bucket) = bucket else {
        emit(&started_text(ctx.output, K::KIND, (ns, name), &what, &arn)?);
        return Ok(());
    };
    let done = wait::wait(aws.executions.client(), &arn, &what, w.timeout, || async {
        catalog::find::<_, K>(&aws.store, &bucket, ns, name)
            .await
            .ok()
            .flatten()
            .map(|d| d.progress())
    })
    .await?;
    match catalog::find::<_, K>(&aws.store, &bucket, ns, name).await? {
        Some(d) => print_described(&d, ctx.output)?,
        None if ctx.output.is_document() => emit(&document(&done.output, ctx.output)?),
        None => {}
    }
    finished(&done, &what)
}

/// What a started execution prints without `--wait`: `{what} started (execution ARN)`, or with
/// `-o json|yaml` the kind, namespace, name and execution.
pub fn started_text(
    output: Output,
    kind: &str,
    (ns, name): (&str, &str),
    what: &str,
    arn: &str,
) -> Result<String, CliError> {
    if output.is_document() {
        document(
            &json!({"kind": kind, "namespace": ns, "name": name, "execution": arn}),
            output,
        )
    } else {
        Ok(format!("{what} started (execution {arn})"))
    }
}

/// Ok for a succeeded execution, the execution's own error name and cause otherwise.
pub fn finished(done: &wait::Finished, what: &str) -> Result<(), CliError> {
    if done.succeeded() {
        return Ok(());
    }
    let name = done
        .error
        .clone()
        .filter(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
        .unwrap_or_else(|| "ExecutionFailed".into());
    // A Lambda error reaches the execution's cause as {"errorType", "errorMessage", ...}.
    let cause = done.cause.clone().unwrap_or_default();
    let cause = serde_json::from_str::<Value>(&cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(String::from))
        .unwrap_or(cause);
    Err(CliError::failed(
        &name,
        format!("{what}: the execution ended {}: {cause}", done.status),
    ))
}

/// A catalog document of a unit test: `doc` (its spec, status, brfed record, more metadata) as
/// the `kind` `br/name`, accepted at 2024-05-01T00:00:00Z.
#[cfg(test)]
pub fn test_doc<D: serde::de::DeserializeOwned>(kind: &str, name: &str, mut doc: Value) -> D {
    let mut metadata =
        json!({"name": name, "namespace": "br", "creationTimestamp": "2024-05-01T00:00:00Z"});
    if let (Some(all), Some(more)) = (metadata.as_object_mut(), doc["metadata"].as_object()) {
        all.extend(more.clone());
    }
    doc["apiVersion"] = "federation.pingcap.com/v1alpha1".into();
    doc["kind"] = kind.into();
    doc["metadata"] = metadata;
    serde_json::from_value(doc).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_execution_is_named_by_its_error() {
        let done = wait::Finished {
            status: "FAILED".into(),
            output: None,
            error: Some("MemberFailed".into()),
            cause: Some("dp2 failed".into()),
        };
        let e = finished(&done, "volumebackup br/bk1").unwrap_err();
        assert_eq!((e.name.as_str(), e.exit_code()), ("MemberFailed", 1));
        assert!(e.message.contains("dp2 failed"));
        let done = wait::Finished {
            status: "ABORTED".into(),
            output: None,
            error: None,
            cause: None,
        };
        assert_eq!(finished(&done, "x").unwrap_err().name, "ExecutionFailed");
    }

    #[test]
    fn a_started_execution_is_said_in_a_line_or_a_document() {
        let line = started_text(
            Output::Table,
            "VolumeBackup",
            ("br", "bk1"),
            "volumebackup br/bk1 deletion",
            "arn:x",
        )
        .unwrap();
        assert_eq!(
            line,
            "volumebackup br/bk1 deletion started (execution arn:x)"
        );
        let doc: Value = serde_json::from_str(
            &started_text(Output::Json, "VolumeRestore", ("br", "rt1"), "", "arn:x").unwrap(),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"kind": "VolumeRestore", "namespace": "br", "name": "rt1", "execution": "arn:x"})
        );
        assert_eq!(
            no_resources(Some("br")),
            "No resources found in br namespace."
        );
        assert_eq!(no_resources(None), "No resources found");
    }
}
