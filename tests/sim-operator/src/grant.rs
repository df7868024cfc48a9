//! What a data plane's administrator does once for brfed (docs/deploy.md, "Data-plane access"):
//! apply brfed's shipped rights, `infra/dataplane/brfed-rbac.yaml`, with its RoleBinding in the
//! namespace of each TiDB cluster. The local world runs brfed's functions as a member of the
//! manifest's subject group only, so a right missing from the file fails the suite.

use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::kubeobj::{DataPlane, backup_resource};

/// The file brfed ships.
pub const BRFED_RBAC: &str = include_str!("../../../infra/dataplane/brfed-rbac.yaml");

/// How long a grant may take to be seen by the API server's authorizer (it reads the RBAC
/// objects through an informer, as kube-apiserver does).
const EFFECTIVE_WITHIN: Duration = Duration::from_secs(30);

/// A grant that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The shipped file is not what this code expects (one ClusterRole, one RoleBinding).
    #[error("infra/dataplane/brfed-rbac.yaml: {0}")]
    Manifest(String),
    /// An API call failed.
    #[error("data plane {plane}: granting brfed in {namespace}: {source}")]
    Kube {
        /// Data plane.
        plane: String,
        /// Namespace.
        namespace: String,
        /// Cause.
        source: kube::Error,
    },
    /// The grant was applied but brfed's group still may not list Backups there.
    #[error(
        "data plane {plane}: brfed's grant in {namespace} not effective after {EFFECTIVE_WITHIN:?}: {last}"
    )]
    NotEffective {
        /// Data plane.
        plane: String,
        /// Namespace.
        namespace: String,
        /// The last refusal.
        last: String,
    },
}

/// The shipped ClusterRole and RoleBinding, the binding moved to `namespace`.
pub fn brfed_rbac(namespace: &str) -> Result<(ClusterRole, RoleBinding), GrantError> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(BRFED_RBAC)
        .map_err(|e| GrantError::Manifest(e.to_string()))?;
    let of_kind = |kind: &str| {
        let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(GrantError::Manifest(format!(
                "expected one {kind}, found {}",
                found.len()
            ))),
        }
    };
    let role: ClusterRole = serde_json::from_value(of_kind("ClusterRole")?)
        .map_err(|e| GrantError::Manifest(e.to_string()))?;
    let mut binding: RoleBinding = serde_json::from_value(of_kind("RoleBinding")?)
        .map_err(|e| GrantError::Manifest(e.to_string()))?;
    binding.metadata.namespace = Some(namespace.to_string());
    Ok((role, binding))
}

/// The group `binding` grants to (for the shipped one, the group brfed's functions are in).
fn granted_group(binding: &RoleBinding) -> Result<String, GrantError> {
    binding
        .subjects
        .iter()
        .flatten()
        .find(|s| s.kind == "Group")
        .map(|s| s.name.clone())
        .ok_or_else(|| GrantError::Manifest("the RoleBinding names no Group".into()))
}

/// Applies the shipped rights in `namespace` of `plane` (server-side apply: idempotent) and
/// waits until the API server grants them: a member of brfed's group may list Backups there.
pub async fn grant_brfed(plane: &DataPlane, namespace: &str) -> Result<(), GrantError> {
    let (role, binding) = brfed_rbac(namespace)?;
    let err = |source| GrantError::Kube {
        plane: plane.name.clone(),
        namespace: namespace.to_string(),
        source,
    };
    let params = PatchParams::apply("brfed-world").force();
    let role_name = role.metadata.name.clone().unwrap_or_default();
    Api::<ClusterRole>::all(plane.client.clone())
        .patch(&role_name, &params, &Patch::Apply(&role))
        .await
        .map_err(err)?;
    let binding_name = binding.metadata.name.clone().unwrap_or_default();
    Api::<RoleBinding>::namespaced(plane.client.clone(), namespace)
        .patch(&binding_name, &params, &Patch::Apply(&binding))
        .await
        .map_err(err)?;

    let check = as_member_of(plane, granted_group(&binding)?)?;
    let backups: Api<kube::api::DynamicObject> =
        Api::namespaced_with(check, namespace, &backup_resource());
    let deadline = Instant::now() + EFFECTIVE_WITHIN;
    loop {
        match backups.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(plane = %plane.name, namespace, error = %e, "grant not effective yet");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(GrantError::NotEffective {
                    plane: plane.name.clone(),
                    namespace: namespace.to_string(),
                    last: e.to_string(),
                });
            }
        }
    }
}

/// A client of `plane` that acts as a member of `group` only (impersonation: the
/// administrator's client asks the API server to authorize as that user).
fn as_member_of(plane: &DataPlane, group: String) -> Result<Client, GrantError> {
    let mut config = plane.config.clone();
    config.auth_info.impersonate = Some("brfed-grant-check".into());
    config.auth_info.impersonate_groups = Some(vec![group]);
    Client::try_from(config).map_err(|source| GrantError::Kube {
        plane: plane.name.clone(),
        namespace: String::new(),
        source,
    })
}
