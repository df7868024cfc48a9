//! Simulator settings, read once from the environment at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Region used when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
pub const DEFAULT_REGION: &str = "us-west-2";

/// Everything the simulator can be tuned with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Kubeconfig whose contexts are the data planes (`KUBECONFIG`, first path of the list).
    pub kubeconfig: PathBuf,
    /// Restrict to these contexts (`SIM_CONTEXTS`, comma-separated); all contexts when `None`.
    pub contexts: Option<Vec<String>>,
    /// Address of the HTTP endpoint (`SIM_HTTP_ADDR`, default `127.0.0.1:18080`).
    pub http_addr: SocketAddr,
    /// Duration of one simulated job step (`SIM_STEP_DELAY_MS`, default 200).
    pub step_delay: Duration,
    /// Time EBS takes to move a snapshot from pending to completed (`SIM_SNAPSHOT_COMPLETE_MS`, default 1000).
    pub snapshot_complete_delay: Duration,
    /// Duration of a warmup job (`SIM_WARMUP_MS`, default twice the step delay).
    pub warmup_duration: Duration,
    /// TTL of the GC/scheduler pause held by an init job (`SIM_PD_TTL_MS`, default 120000).
    pub pd_lease_ttl: Duration,
    /// How often a non-terminal object is looked at without any event (`SIM_POLL_MS`, default 1000).
    pub poll_interval: Duration,
    /// AWS region of the emulated account.
    pub region: String,
}

/// A setting that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `KUBECONFIG` is not set.
    #[error(
        "KUBECONFIG is not set: it must name the kubeconfig whose contexts are the data planes"
    )]
    NoKubeconfig,
    /// A variable holds something that does not parse.
    #[error("{name}={value:?} is not valid: {why}")]
    Invalid {
        /// Variable name.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        why: &'static str,
    },
}

impl SimConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `get` (testable without touching the environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let kubeconfig = get("KUBECONFIG")
            .and_then(|v| v.split(':').find(|p| !p.is_empty()).map(PathBuf::from))
            .ok_or(ConfigError::NoKubeconfig)?;
        let contexts = get("SIM_CONTEXTS").map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        });
        let http_addr = match get("SIM_HTTP_ADDR") {
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                name: "SIM_HTTP_ADDR",
                value: v.clone(),
                why: "expected host:port",
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 18080)),
        };
        let millis = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| ConfigError::Invalid {
                        name,
                        value: v.clone(),
                        why: "expected milliseconds",
                    }),
                None => Ok(Duration::from_millis(default)),
            }
        };
        let step_delay = millis("SIM_STEP_DELAY_MS", 200)?;
        let default_warmup = u64::try_from(step_delay.as_millis() * 2).unwrap_or(u64::MAX);
        Ok(Self {
            kubeconfig,
            contexts,
            http_addr,
            step_delay,
            snapshot_complete_delay: millis("SIM_SNAPSHOT_COMPLETE_MS", 1000)?,
            warmup_duration: millis("SIM_WARMUP_MS", default_warmup)?,
            pd_lease_ttl: millis("SIM_PD_TTL_MS", 120_000)?,
            poll_interval: millis("SIM_POLL_MS", 1000)?,
            region: region_from(&get),
        })
    }
}

/// The region from `AWS_REGION` / `AWS_DEFAULT_REGION`, else [`DEFAULT_REGION`].
pub fn region_from(get: &impl Fn(&str) -> Option<String>) -> String {
    get("AWS_REGION")
        .or_else(|| get("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| DEFAULT_REGION.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_when_only_the_kubeconfig_is_given() {
        let cfg = SimConfig::from_lookup(lookup(&[("KUBECONFIG", "/a:/b")])).unwrap();
        assert_eq!(cfg.kubeconfig, PathBuf::from("/a"));
        assert_eq!(cfg.step_delay, Duration::from_millis(200));
        assert_eq!(cfg.warmup_duration, Duration::from_millis(400));
        assert_eq!(cfg.pd_lease_ttl, Duration::from_secs(120));
        assert_eq!(cfg.http_addr.to_string(), "127.0.0.1:18080");
        assert_eq!(cfg.region, "us-west-2");
        assert!(cfg.contexts.is_none());
    }

    #[test]
    fn a_missing_kubeconfig_or_a_bad_number_is_refused() {
        assert!(matches!(
            SimConfig::from_lookup(lookup(&[])),
            Err(ConfigError::NoKubeconfig)
        ));
        let bad = SimConfig::from_lookup(lookup(&[
            ("KUBECONFIG", "/k"),
            ("SIM_STEP_DELAY_MS", "fast"),
        ]));
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                name: "SIM_STEP_DELAY_MS",
                ..
            })
        ));
    }
}
