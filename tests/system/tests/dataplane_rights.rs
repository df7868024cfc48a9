//! brfed in the data planes has exactly the rights it ships (infra/dataplane/brfed-rbac.yaml, bound
//! in each TiDB namespace by the seed, as docs/deploy.md tells an administrator to): the local
//! world's API servers authorize with RBAC, and the functions run as a member of the manifest's
//! group only (`$BRFED_WORLD_DIR/functions.kubeconfig`), never as an administrator.

use brfed_sim_operator::kubeobj::{DataPlane, backup_resource, data_planes, tidbcluster_resource};
use brfed_sim_operator::seed::{TidbClusterSeed, seed_tidb_cluster};
use brfed_system_tests::dataplane::{World, unique};
use brfed_system_tests::fixtures::{VolumeBackup, backup_clusters};
use brfed_system_tests::workflow::{Workflows, catalog_doc};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use std::path::PathBuf;
use std::time::Duration;

/// The data planes as brfed's functions reach them.
async fn as_functions() -> Vec<DataPlane> {
    let dir = std::env::var("BRFED_WORLD_DIR").expect("BRFED_WORLD_DIR (make world-env)");
    data_planes(&PathBuf::from(dir).join("functions.kubeconfig"), &[])
        .await
        .expect("the functions' kubeconfig")
}

/// Seeds TidbCluster `basic` (one store a plane) in namespace `ns` of `planes`, with brfed's
/// rights there or not.
async fn seed(world: &World, planes: &[String], ns: &str, granted: bool) {
    let seed = TidbClusterSeed::new(ns, "basic", format!("{ns}-tidb")).stores_per_plane(1);
    let seed = if granted {
        seed
    } else {
        seed.without_brfed_grant()
    };
    seed_tidb_cluster(&world.kubeconfig, planes, &seed)
        .await
        .expect("seed");
}

fn status_code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API refusal: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_functions_have_the_shipped_rights_in_granted_namespaces_and_no_others() {
    let world = World::from_env().await;
    let granted = unique("rights-in");
    let other = unique("rights-out");
    let planes = world.plane_names(1);
    seed(&world, &planes, &granted, true).await;
    seed(&world, &planes, &other, false).await;
    let dp = as_functions().await.remove(0);
    let backups =
        |ns: &str| Api::<DynamicObject>::namespaced_with(dp.client.clone(), ns, &backup_resource());
    let tcs = |ns: &str| {
        Api::<DynamicObject>::namespaced_with(dp.client.clone(), ns, &tidbcluster_resource())
    };
    let first = ListParams::default().limit(1);

    // what brfed does, where it is granted
    backups(&granted)
        .list_metadata(&first)
        .await
        .expect("list Backups");
    tcs(&granted)
        .get("basic")
        .await
        .expect("get the TidbCluster");
    // nothing cluster-wide, nothing in another namespace, nothing more on TidbClusters
    let all = Api::<DynamicObject>::all_with(dp.client.clone(), &backup_resource());
    assert_eq!(
        status_code(all.list_metadata(&first).await.unwrap_err()),
        403
    );
    assert_eq!(
        status_code(backups(&other).list_metadata(&first).await.unwrap_err()),
        403
    );
    assert_eq!(
        status_code(tcs(&other).get("basic").await.unwrap_err()),
        403
    );
    assert_eq!(
        status_code(tcs(&granted).list_metadata(&first).await.unwrap_err()),
        403
    );
    assert_eq!(
        status_code(
            tcs(&granted)
                .delete("basic", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        403
    );
    assert!(
        world
            .tidbclusters(&planes[0], &granted)
            .get_opt("basic")
            .await
            .unwrap()
            .is_some(),
        "the TidbCluster is still there"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_in_a_namespace_not_granted_to_brfed_is_refused_by_name_before_anything_is_created()
 {
    let world = World::from_env().await;
    let flows = Workflows::from_env().await;
    let ns = unique("rights-none");
    let planes = world.plane_names(3);
    seed(&world, &planes, &ns, false).await;
    let name = format!("bk-{}", &ns[ns.len() - 8..]);
    let input = VolumeBackup::new(
        &name,
        backup_clusters(&planes, "basic", &ns),
        &world.bucket,
        &format!("{ns}/b"),
    )
    .build();
    let arn = flows.start(&flows.backup_arn, &name, &input).await;
    let done = flows.wait(&arn, Duration::from_secs(120)).await;
    done.assert_failed_with("DataPlaneForbidden", &ns);
    done.assert_failed_with("DataPlaneForbidden", "list backups in namespace");
    done.assert_failed_with("DataPlaneForbidden", "cannot list resource");
    done.assert_failed_with("DataPlaneForbidden", "infra/dataplane/brfed-rbac.yaml");
    for p in &planes {
        let members = world
            .backups(p, &ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        assert!(members.items.is_empty(), "{p}: no member was created");
    }
    assert!(catalog_doc(&world, "br", &name).await.is_none());
}
