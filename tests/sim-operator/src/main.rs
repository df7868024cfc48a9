//! `brfed-sim-operator run` (default): the simulated TiDB Operator.
//! `brfed-sim-operator seed --namespace NS --name TC --key KEY [--stores N] [--contexts a,b] [--azs a,b]
//!  [--storage-volume NAME:MOUNT:SIZE]... [--restore-target]`: seed TiDB clusters.
//! Environment: `KUBECONFIG`, `AWS_ENDPOINT_URL`, `AWS_REGION`, credentials, `SIM_*` (see `config`).

use std::process::ExitCode;

use brfed_sim_operator::config::SimConfig;
use brfed_sim_operator::kubeobj::data_planes;
use brfed_sim_operator::seed::{TidbClusterSeed, seed_restore_target, seed_tidb_cluster};
use brfed_sim_operator::{cloud::Cloud, http, sim};

/// Log filter without `RUST_LOG`: kube's client logs every failed connection attempt of a watch at
/// ERROR while an apiserver is down; the simulator reports the outage once per watch instead.
const DEFAULT_LOG_FILTER: &str = "info,kube_client::client::builder=off";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("run") => run().await,
        Some("seed") => seed(&args[1..]).await,
        Some("-h" | "--help" | "help") => {
            eprintln!(
                "usage: brfed-sim-operator [run] | seed --namespace NS --name TC --key KEY [--stores N] [--contexts a,b] [--azs a,b] [--storage-volume NAME:MOUNT:SIZE]... [--restore-target]"
            );
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?} (run | seed | help)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "brfed-sim-operator failed");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let cfg = SimConfig::from_env().map_err(|e| e.to_string())?;
    let contexts = cfg.contexts.clone().unwrap_or_default();
    let planes = data_planes(&cfg.kubeconfig, &contexts)
        .await
        .map_err(|e| e.to_string())?;
    if planes.is_empty() {
        return Err(format!(
            "kubeconfig {} has no contexts",
            cfg.kubeconfig.display()
        ));
    }
    let cloud = Cloud::from_env(&cfg.region).await;
    let listener = tokio::net::TcpListener::bind(cfg.http_addr)
        .await
        .map_err(|e| format!("binding {}: {e}", cfg.http_addr))?;
    tracing::info!(
        planes = ?planes.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        http = %cfg.http_addr,
        step_ms = cfg.step_delay.as_millis() as u64,
        snapshot_complete_ms = cfg.snapshot_complete_delay.as_millis() as u64,
        pd_ttl_ms = cfg.pd_lease_ttl.as_millis() as u64,
        "simulated TiDB operator starting"
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sim = sim::Sim::new(cfg, planes, cloud, tx);
    let app = http::router(sim.pd.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::select! {
        () = sim::run(sim, rx) => Err("controller stopped".to_string()),
        r = server => Err(format!("http server stopped: {r:?}")),
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn seed(args: &[String]) -> Result<(), String> {
    let mut opts = std::collections::HashMap::<&str, String>::new();
    let mut volumes = Vec::new();
    let mut restore_target = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--restore-target" => restore_target = true,
            "--namespace" | "--name" | "--key" | "--stores" | "--contexts" | "--azs"
            | "--storage-volume" => {
                let value = it
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value"))?
                    .clone();
                if flag == "--storage-volume" {
                    volumes.push(value);
                } else {
                    opts.insert(flag.trim_start_matches("--"), value);
                }
            }
            other => return Err(format!("unknown seed option {other:?}")),
        }
    }
    let need = |k: &str| {
        opts.get(k)
            .cloned()
            .ok_or_else(|| format!("seed needs --{k}"))
    };
    let list = |k: &str| -> Vec<String> {
        opts.get(k)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut s = TidbClusterSeed::new(need("namespace")?, need("name")?, need("key")?);
    if let Some(n) = opts.get("stores") {
        s = s.stores_per_plane(
            n.parse()
                .map_err(|_| format!("--stores {n:?} is not a number"))?,
        );
    }
    let azs = list("azs");
    if !azs.is_empty() {
        s = s.azs(azs);
    }
    for v in volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let [name, mount, size] = parts[..] else {
            return Err(format!("--storage-volume {v:?}: expected NAME:MOUNT:SIZE"));
        };
        s = s.storage_volume(name, mount, size);
    }
    let kubeconfig = SimConfig::from_env().map_err(|e| e.to_string())?.kubeconfig;
    let contexts = list("contexts");
    let seeded = if restore_target {
        seed_restore_target(&kubeconfig, &contexts, &s).await
    } else {
        seed_tidb_cluster(&kubeconfig, &contexts, &s).await
    }
    .map_err(|e| e.to_string())?;
    for p in seeded {
        println!(
            "{} az={} stores={:?} volumes={:?}",
            p.plane, p.az, p.store_ids, p.volume_ids
        );
    }
    Ok(())
}
