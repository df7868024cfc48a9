//! Kubernetes plumbing: data-plane clients from kubeconfig contexts, the dynamic API resources,
//! status conditions, and whole-object updates with conflict retry (the tidb-operator CRDs have no
//! status subresource).

use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The data-plane `Backup` resource.
pub fn backup_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("pingcap.com", "v1alpha1", "Backup"),
        "backups",
    )
}

/// The data-plane `Restore` resource.
pub fn restore_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("pingcap.com", "v1alpha1", "Restore"),
        "restores",
    )
}

/// The data-plane `TidbCluster` resource.
pub fn tidbcluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("pingcap.com", "v1alpha1", "TidbCluster"),
        "tidbclusters",
    )
}

/// Clients of one data plane.
#[derive(Clone)]
pub struct DataPlane {
    /// Context name = data-plane name.
    pub name: String,
    /// Client for requests (with a response timeout, so a hung apiserver cannot stall a reconcile).
    pub client: Client,
    /// Client for watches (no response timeout).
    pub watch_client: Client,
    /// The configuration of `client` (for a client of other credentials, such as an
    /// impersonating one).
    pub config: kube::Config,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("name", &self.name)
            .finish()
    }
}

/// A kubeconfig problem.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// The file could not be read.
    #[error("reading kubeconfig {path}: {source}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        source: kube::config::KubeconfigError,
    },
    /// A context could not be turned into a client.
    #[error("context {context}: {message}")]
    Context {
        /// Context name.
        context: String,
        /// Cause.
        message: String,
    },
}

/// Builds clients for `contexts` (every context of the file when empty).
pub async fn data_planes(path: &Path, contexts: &[String]) -> Result<Vec<DataPlane>, PlaneError> {
    let kc = Kubeconfig::read_from(path).map_err(|source| PlaneError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let names: Vec<String> = if contexts.is_empty() {
        kc.contexts.iter().map(|c| c.name.clone()).collect()
    } else {
        contexts.to_vec()
    };
    let mut planes = Vec::new();
    for name in names {
        let opts = KubeConfigOptions {
            context: Some(name.clone()),
            ..KubeConfigOptions::default()
        };
        let err = |e: &dyn std::fmt::Display| PlaneError::Context {
            context: name.clone(),
            message: e.to_string(),
        };
        let mut config = kube::Config::from_custom_kubeconfig(kc.clone(), &opts)
            .await
            .map_err(|e| err(&e))?;
        config.connect_timeout = Some(Duration::from_secs(3));
        let watch_client = Client::try_from(config.clone()).map_err(|e| err(&e))?;
        config.read_timeout = Some(Duration::from_secs(15));
        config.write_timeout = Some(Duration::from_secs(15));
        let client = Client::try_from(config.clone()).map_err(|e| err(&e))?;
        planes.push(DataPlane {
            name,
            client,
            watch_client,
            config,
        });
    }
    Ok(planes)
}

/// `lastTransitionTime` format of Kubernetes (`metav1.Time`: seconds, `Z`).
pub fn k8s_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A JSON value at a `/`-separated pointer of the object's data (`spec`/`status`).
pub fn at<'a>(obj: &'a DynamicObject, pointer: &str) -> Option<&'a Value> {
    obj.data.pointer(pointer)
}

/// A string at a pointer, empty strings as `None`.
pub fn str_at<'a>(obj: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    at(obj, pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// True when the condition `ty` is present with status `True`.
pub fn has_condition(obj: &DynamicObject, ty: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// The condition `ty`, if present.
pub fn condition<'a>(obj: &'a DynamicObject, ty: &str) -> Option<&'a Value> {
    at(obj, "/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

/// `status.phase`.
pub fn phase(obj: &DynamicObject) -> Option<&str> {
    str_at(obj, "/status/phase")
}

/// Writes condition `ty` (status `True`) and sets `status.phase` to it, the tidb-operator way: one
/// entry per type, `lastTransitionTime` kept when the status does not change. Returns whether the
/// object changed.
pub fn set_condition(obj: &mut DynamicObject, ty: &str, reason: &str, message: &str) -> bool {
    let before = obj.data.get("status").cloned();
    let status = status_mut(obj);
    let conditions = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    let list = conditions.as_array_mut().expect("conditions is an array");
    let now = k8s_now();
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
    {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) != Some("True") {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!("True");
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => list.push(json!({
            "type": ty,
            "status": "True",
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        })),
    }
    status.insert("phase".to_string(), json!(ty));
    obj.data.get("status") != before.as_ref()
}

/// `status` as a mutable map (created when missing).
pub fn status_mut(obj: &mut DynamicObject) -> &mut serde_json::Map<String, Value> {
    if !obj.data.is_object() {
        obj.data = json!({});
    }
    let map = obj.data.as_object_mut().expect("object");
    let status = map.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    status.as_object_mut().expect("status is an object")
}

/// Re-reads `name`, applies `mutate`, and replaces the whole object, retrying on conflicts.
/// `mutate` returns false when nothing needs writing. Returns the stored object, or `None` when
/// the object is gone or was replaced by another one (different uid).
pub async fn update_object(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    mut mutate: impl FnMut(&mut DynamicObject) -> bool,
) -> Result<Option<DynamicObject>, kube::Error> {
    let mut attempt = 0u32;
    loop {
        let Some(mut obj) = api.get_opt(name).await? else {
            return Ok(None);
        };
        if obj.metadata.uid.as_deref() != Some(uid) {
            return Ok(None);
        }
        if !mutate(&mut obj) {
            return Ok(Some(obj));
        }
        match api.replace(name, &PostParams::default(), &obj).await {
            Ok(stored) => return Ok(Some(stored)),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj() -> DynamicObject {
        DynamicObject::new("b", &backup_resource()).data(json!({"spec": {}}))
    }

    #[test]
    fn a_condition_sets_the_phase_and_keeps_its_transition_time_when_rewritten() {
        let mut o = obj();
        assert!(set_condition(&mut o, "Scheduled", "", ""));
        assert!(set_condition(&mut o, "Running", "", ""));
        let first = condition(&o, "Scheduled").unwrap()["lastTransitionTime"].clone();
        assert!(set_condition(&mut o, "Scheduled", "Again", "execute job"));
        assert_eq!(phase(&o), Some("Scheduled"));
        assert_eq!(
            condition(&o, "Scheduled").unwrap()["lastTransitionTime"],
            first
        );
        let types: Vec<_> = at(&o, "/status/conditions")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["Scheduled", "Running"]);
        assert!(has_condition(&o, "Running"));
        assert!(!has_condition(&o, "Complete"));
        assert!(!set_condition(&mut o, "Scheduled", "Again", "execute job"));
    }
}
