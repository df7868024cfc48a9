//! EKS authentication without the `aws` binary: the bearer token `aws eks get-token` prints,
//! made in-process.
//!
//! # The token
//! An EKS token is a presigned STS `GetCallerIdentity` request: EKS (aws-iam-authenticator on
//! the control plane) replays the URL against STS and maps the caller's ARN to Kubernetes
//! identities. [`presign_token`] builds the SigV4 query-signed
//! `GET https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15` with the
//! header `x-k8s-aws-id: {cluster}` signed (`X-Amz-SignedHeaders=host;x-k8s-aws-id`, so the
//! token is bound to one cluster), `X-Amz-Expires=60`, the empty-body payload hash, and the
//! session token (if any) inside the signed query. The token is `k8s-aws-v1.` followed by the
//! URL in URL-safe base64 without padding. The query parameters are written in botocore's
//! order (operation parameters, then `X-Amz-Algorithm`, `-Credential`, `-Date`, `-Expires`,
//! `-SignedHeaders`, `-Security-Token`, and `X-Amz-Signature` last), so the whole token equals
//! the AWS CLI's byte for byte: `tests/eks_token.rs` checks it against vectors presigned by
//! botocore (`tests/eks_token_kat.py`).
//!
//! **Endpoint: always the regional one**, `sts.{region}.amazonaws.com` (`.amazonaws.com.cn`
//! for `cn-*` regions), never the global `sts.amazonaws.com`. `aws eks get-token` presigns
//! whichever endpoint botocore's `sts_regional_endpoints` setting picks, and botocore now
//! defaults it to `regional` (1.44.5, the version the vectors come from, does); the global
//! endpoint is what its older `legacy` setting used for the long-standing regions. The regional
//! endpoint also works in every partition and signs in the cluster's own region.
//! The region is the one the exec names (`--region`, else
//! `AWS_REGION`/`AWS_DEFAULT_REGION` in the exec's `env`), else the function's own region.
//!
//! **Lifetime.** EKS accepts a token for 15 minutes after its signing time (`X-Amz-Date`)
//! whatever `X-Amz-Expires` says; like aws-iam-authenticator and the AWS CLI we call it expired
//! 14 minutes after signing, or when the credentials that signed it expire if that is sooner.
//! [`EksTokenProvider`] hands out its cached token until 1 minute before that expiry (13
//! minutes after signing), then signs a new one.
//!
//! # Wiring into kube
//! `aws eks update-kubeconfig` writes a user whose `exec` runs
//! `aws [--region R] eks get-token --cluster-name X [--role-arn A] [--output json]`.
//! [`replace_aws_exec`] recognises that exec ([`AwsGetToken::from_exec`]), removes it from the
//! [`Config`] (so kube never spawns `aws`) and returns an [`EksTokenProvider`] signing with the
//! function's credentials (or with `--role-arn` assumed through STS). [`client`] then builds
//! kube's default client stack (TLS, timeouts, base URI, retries, tracing; with the exec gone
//! it has no auth layer of its own) and puts one tower layer in front of it that asks the
//! provider for a token and sets `Authorization: Bearer …` on every request. kube's own
//! refreshing-token layer is not reachable from outside the crate, and putting a fixed token in
//! `auth_info.token` would need the client rebuilt every 13 minutes; a per-request header
//! from a cached provider keeps one client for the life of the process. The layer needs a
//! cloneable inner service, so kube's boxed stack is first wrapped in a tower `Buffer` (as
//! [`Client`] itself does). A long watch keeps the token it started with: EKS checks the
//! token when the request starts.
//!
//! Not handled, left to kube as they are: `aws-iam-authenticator token` execs, and any other
//! exec. `--profile` and `AWS_PROFILE` are ignored on purpose: in Lambda the function's role
//! is the identity EKS must map (an access entry or `aws-auth`), not the operator's profile.

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningParams, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_types::error::display::DisplayErrorContext;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use kube::client::{Body, ClientBuilder};
use kube::config::ExecConfig;
use kube::{Client, Config};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tower::buffer::BufferLayer;
use tower::filter::AsyncFilterLayer;

/// What EKS tokens start with; the rest is the presigned URL in URL-safe base64, unpadded.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The signed header naming the cluster the token is for.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// `X-Amz-Expires` of the presigned URL (what the AWS CLI sends; EKS applies its own 15 min).
pub const PRESIGNED_URL_EXPIRES: Duration = Duration::from_secs(60);
/// How long after signing a token counts as valid (EKS accepts 15 min; the CLI reports 14).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);
/// How long before a token's expiry [`EksTokenProvider`] replaces it.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(60);
/// Session name when the exec asks for `--role-arn`.
const ROLE_SESSION_NAME: &str = "brfed-eks-get-token";
/// Requests waiting in front of the token layer (what kube's own `Client` buffer holds).
const BUFFER_BOUND: usize = 1024;

/// Why no EKS token could be had.
#[derive(Debug, thiserror::Error)]
pub enum EksTokenError {
    /// The kubeconfig's `aws eks get-token` exec cannot be served in-process.
    #[error("aws eks get-token exec: {0}")]
    Exec(String),
    /// The kubeconfig asks to run a program other than `aws eks get-token`.
    #[error("{0}")]
    ExecRefused(String),
    /// The AWS credentials provider failed.
    #[error("AWS credentials for an EKS token: {0}")]
    Credentials(String),
    /// SigV4 refused the request (a cluster name or region that is not a valid header/URL).
    #[error("signing an EKS token: {0}")]
    Signing(String),
}

/// One presigned EKS token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The bearer token: [`TOKEN_PREFIX`] + base64url(`url`), no padding.
    pub value: String,
    /// The presigned STS URL inside it.
    pub url: String,
    /// When it was signed (`X-Amz-Date`).
    pub signed_at: SystemTime,
    /// When it stops being valid: [`TOKEN_LIFETIME`] after signing, or the expiry of the
    /// credentials that signed it if sooner.
    pub expires_at: SystemTime,
}

impl Token {
    /// When a cache should stop handing it out: [`REFRESH_BEFORE_EXPIRY`] before expiry.
    pub fn refresh_at(&self) -> SystemTime {
        self.expires_at
            .checked_sub(REFRESH_BEFORE_EXPIRY)
            .unwrap_or(self.expires_at)
    }
}

impl fmt::Debug for Token {
    // the token is a credential for 15 minutes: never print it
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("signed_at", &self.signed_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The STS host a token for `region` is presigned for: the regional endpoint of the region's
/// partition (`amazonaws.com.cn` for `cn-*`, `amazonaws.com` otherwise, GovCloud included; the
/// isolated `us-iso*` partitions are not handled).
pub fn sts_host(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("sts.{region}.{suffix}")
}

/// SigV4's URI encoding of a query component: unreserved characters kept, the rest `%XX`.
fn uri_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Presigns the EKS token for `cluster_id` (the cluster name, or the cluster id of an EKS local
/// cluster) with `credentials` at `signing_time`, against the regional STS endpoint of
/// `region`. Pure: no clock, no network.
pub fn presign_token(
    cluster_id: &str,
    region: &str,
    credentials: &Credentials,
    signing_time: SystemTime,
) -> Result<Token, EksTokenError> {
    let base = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGNED_URL_EXPIRES);
    let identity = credentials.clone().into();
    let params: SigningParams = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(signing_time)
        .settings(settings)
        .build()
        .map_err(|e| EksTokenError::Signing(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        std::iter::once((CLUSTER_ID_HEADER, cluster_id)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| EksTokenError::Signing(e.to_string()))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| EksTokenError::Signing(e.to_string()))?
        .into_parts();
    let (_, query) = instructions.into_parts();

    // botocore's order: the signature goes last, after the session token
    let mut url = base;
    let mut signature = None;
    for (name, value) in query {
        if name == "X-Amz-Signature" {
            signature = Some(value);
        } else {
            url.push_str(&format!("&{name}={}", uri_encode(&value)));
        }
    }
    let signature =
        signature.ok_or_else(|| EksTokenError::Signing("no X-Amz-Signature produced".into()))?;
    url.push_str(&format!("&X-Amz-Signature={signature}"));

    let mut expires_at = signing_time + TOKEN_LIFETIME;
    if let Some(credentials_expiry) = credentials.expiry() {
        expires_at = expires_at.min(credentials_expiry);
    }
    Ok(Token {
        value: format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&url)),
        url,
        signed_at: signing_time,
        expires_at,
    })
}

/// Where [`EksTokenProvider`] reads the time; injectable for tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Hands out the EKS token of one cluster, signing a new one [`REFRESH_BEFORE_EXPIRY`] before
/// the cached one expires. Safe to share between tasks: callers arriving while a token is
/// being signed wait for it rather than signing their own.
pub struct EksTokenProvider {
    credentials: SharedCredentialsProvider,
    cluster_id: String,
    region: String,
    clock: Clock,
    cached: Mutex<Option<Token>>,
}

impl fmt::Debug for EksTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EksTokenProvider")
            .field("cluster_id", &self.cluster_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl EksTokenProvider {
    /// Tokens for `cluster_id` in `region`, signed with `credentials` (usually
    /// [`SdkConfig::credentials_provider`]), on the system clock.
    pub fn new(
        credentials: SharedCredentialsProvider,
        cluster_id: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            credentials,
            cluster_id: cluster_id.into(),
            region: region.into(),
            clock: Arc::new(SystemTime::now),
            cached: Mutex::new(None),
        }
    }

    /// The same, reading the time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The cluster the tokens are for (the `x-k8s-aws-id` header).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The region whose STS endpoint the tokens are presigned for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// A valid token: the cached one until [`Token::refresh_at`], then a fresh one signed
    /// with newly provided credentials. A failure caches nothing.
    pub async fn token(&self) -> Result<String, EksTokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && (self.clock)() < token.refresh_at()
        {
            return Ok(token.value.clone());
        }
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| EksTokenError::Credentials(DisplayErrorContext(&e).to_string()))?;
        let token = presign_token(&self.cluster_id, &self.region, &credentials, (self.clock)())?;
        tracing::debug!(
            cluster_id = %self.cluster_id,
            region = %self.region,
            expires_at = ?token.expires_at,
            "signed an EKS token"
        );
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }
}

/// What a kubeconfig user's `aws eks get-token` exec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsGetToken {
    /// `--cluster-id` (EKS local clusters) if given, else `--cluster-name`: the value of the
    /// signed `x-k8s-aws-id` header.
    pub cluster_id: String,
    /// `--region`, else `AWS_REGION` or `AWS_DEFAULT_REGION` from the exec's `env`.
    pub region: Option<String>,
    /// `--role-arn`: a role to assume before signing.
    pub role_arn: Option<String>,
}

impl AwsGetToken {
    /// `Ok(None)` unless `exec` runs `aws … eks get-token …` (the command's file name is `aws`,
    /// and `eks` and `get-token` follow each other in its arguments). Options are read as
    /// `--name value` or `--name=value`; those other than the ones kept here are ignored.
    pub fn from_exec(exec: &ExecConfig) -> Result<Option<Self>, EksTokenError> {
        let Some(command) = exec.command.as_deref() else {
            return Ok(None);
        };
        if Path::new(command).file_name().and_then(|n| n.to_str()) != Some("aws") {
            return Ok(None);
        }
        let args = exec.args.as_deref().unwrap_or_default();
        if !args
            .windows(2)
            .any(|w| w[0] == "eks" && w[1] == "get-token")
        {
            return Ok(None);
        }
        let option = |name: &str| -> Result<Option<String>, EksTokenError> {
            let mut found = None;
            for (i, arg) in args.iter().enumerate() {
                let value =
                    if arg == name {
                        Some(args.get(i + 1).cloned().ok_or_else(|| {
                            EksTokenError::Exec(format!("`{name}` without a value"))
                        })?)
                    } else {
                        arg.strip_prefix(name)
                            .and_then(|rest| rest.strip_prefix('='))
                            .map(str::to_owned)
                    };
                if value.is_some() {
                    found = value;
                }
            }
            Ok(found.filter(|v| !v.is_empty()))
        };
        let cluster_id = match option("--cluster-id")? {
            Some(id) => id,
            None => option("--cluster-name")?.ok_or_else(|| {
                EksTokenError::Exec("neither --cluster-name nor --cluster-id is given".into())
            })?,
        };
        let env = |name: &str| {
            exec.env.iter().flatten().find_map(|pair| {
                (pair.get("name").map(String::as_str) == Some(name))
                    .then(|| pair.get("value").cloned())
                    .flatten()
                    .filter(|v| !v.is_empty())
            })
        };
        let region = match option("--region")? {
            Some(r) => Some(r),
            None => env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
        };
        Ok(Some(Self {
            cluster_id,
            region,
            role_arn: option("--role-arn")?,
        }))
    }
}

/// If `config`'s user authenticates with `aws eks get-token`, removes that exec and returns the
/// provider that makes the same tokens in-process; `Ok(None)` (and `config` untouched) for any
/// other kind of user. Credentials and, when the exec names none, the region come from `aws`;
/// a `--role-arn` is assumed through STS on top of them. Nothing is fetched yet.
pub async fn replace_aws_exec(
    config: &mut Config,
    aws: &SdkConfig,
) -> Result<Option<Arc<EksTokenProvider>>, EksTokenError> {
    if let Some(provider) = &config.auth_info.auth_provider
        && provider.config.contains_key("cmd-path")
    {
        return Err(EksTokenError::ExecRefused(format!(
            "auth-provider `{}` runs a command (cmd-path); brfed runs no program named by a kubeconfig",
            provider.name
        )));
    }
    let Some(exec) = config.auth_info.exec.as_ref() else {
        return Ok(None);
    };
    let Some(get) = AwsGetToken::from_exec(exec)? else {
        return Err(EksTokenError::ExecRefused(format!(
            "exec plugin `{}` is not `aws eks get-token`; brfed serves only that one (in-process) and runs no program named by a kubeconfig",
            exec.command.as_deref().unwrap_or("")
        )));
    };
    let region = get
        .region
        .or_else(|| aws.region().map(|r| r.to_string()))
        .ok_or_else(|| {
            EksTokenError::Exec(format!(
                "no region for cluster `{}`: the exec names none and AWS_REGION is not set",
                get.cluster_id
            ))
        })?;
    let credentials = match get.role_arn {
        // AssumeRoleProvider panics without a time source; `aws_config::load_*` always sets one
        Some(_) if aws.time_source().is_none() => {
            return Err(EksTokenError::Exec(
                "--role-arn needs an AWS configuration with a time source".into(),
            ));
        }
        Some(role_arn) => SharedCredentialsProvider::new(
            AssumeRoleProvider::builder(role_arn)
                .configure(aws)
                .session_name(ROLE_SESSION_NAME)
                .build()
                .await,
        ),
        None => aws.credentials_provider().ok_or_else(|| {
            EksTokenError::Exec("the AWS configuration has no credentials provider".into())
        })?,
    };
    config.auth_info.exec = None;
    Ok(Some(Arc::new(EksTokenProvider::new(
        credentials,
        get.cluster_id,
        region,
    ))))
}

/// A kube client for `config`: kube's default stack, plus, when `tokens` is given, the layer
/// that sets `Authorization: Bearer {token}` from it on every request.
pub fn client(
    config: Config,
    tokens: Option<&Arc<EksTokenProvider>>,
) -> Result<Client, kube::Error> {
    let Some(tokens) = tokens else {
        return Client::try_from(config);
    };
    let tokens = Arc::clone(tokens);
    let authorize = move |mut request: http::Request<Body>| {
        let tokens = Arc::clone(&tokens);
        async move {
            let token = tokens.token().await?;
            let mut value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|e| EksTokenError::Signing(e.to_string()))?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
            Ok::<_, EksTokenError>(request)
        }
    };
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&BufferLayer::<http::Request<Body>>::new(BUFFER_BOUND))
        .with_layer(&AsyncFilterLayer::new(authorize))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const MINUTE: Duration = Duration::from_secs(60);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045) // 2026-01-02T03:04:05Z
    }

    /// A clock the test moves by hand.
    fn manual_clock() -> (Clock, Arc<std::sync::Mutex<SystemTime>>) {
        let now = Arc::new(std::sync::Mutex::new(t0()));
        let read = Arc::clone(&now);
        (Arc::new(move || *read.lock().unwrap()), now)
    }

    /// Static credentials that count how often they are asked for.
    #[derive(Debug, Default)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        fail: bool,
        expiry: Option<SystemTime>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            use aws_credential_types::provider::{error::CredentialsError, future};
            self.calls.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(if self.fail {
                Err(CredentialsError::not_loaded("no credentials in this test"))
            } else {
                Ok(Credentials::new(
                    "AKIDEXAMPLE",
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    Some("session".into()),
                    self.expiry,
                    "test",
                ))
            })
        }
    }

    /// A provider for `tidb-east` on a manual clock, with its credential-call counter and clock.
    fn provider(
        creds: Counting,
    ) -> (
        EksTokenProvider,
        Arc<AtomicUsize>,
        Arc<std::sync::Mutex<SystemTime>>,
    ) {
        let calls = Arc::clone(&creds.calls);
        let (clock, now) = manual_clock();
        let tokens = EksTokenProvider::new(
            SharedCredentialsProvider::new(creds),
            "tidb-east",
            "us-west-2",
        )
        .with_clock(clock);
        (tokens, calls, now)
    }

    fn signed_at(token: &str) -> String {
        let url = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(TOKEN_PREFIX).expect("prefix"))
            .expect("base64url");
        let url = String::from_utf8(url).expect("utf-8");
        let date = url.split('&').find_map(|kv| kv.strip_prefix("X-Amz-Date="));
        date.expect("X-Amz-Date").to_owned()
    }

    #[tokio::test]
    async fn the_cached_token_is_reused_until_thirteen_minutes_after_signing() {
        let (tokens, calls, now) = provider(Counting::default());
        let first = tokens.token().await.unwrap();
        assert_eq!(signed_at(&first), "20260102T030405Z");

        *now.lock().unwrap() = t0() + 13 * MINUTE - Duration::from_secs(1);
        assert_eq!(tokens.token().await.unwrap(), first);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        *now.lock().unwrap() = t0() + 13 * MINUTE;
        let second = tokens.token().await.unwrap();
        assert_ne!(second, first);
        assert_eq!(signed_at(&second), "20260102T031705Z");
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // and the new one lives its own 13 minutes
        *now.lock().unwrap() = t0() + 25 * MINUTE;
        assert_eq!(tokens.token().await.unwrap(), second);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_token_is_refreshed_a_minute_before_its_credentials_expire() {
        let (tokens, calls, now) = provider(Counting {
            expiry: Some(t0() + 5 * MINUTE),
            ..Default::default()
        });
        let first = tokens.token().await.unwrap();
        *now.lock().unwrap() = t0() + 4 * MINUTE - Duration::from_secs(1);
        assert_eq!(tokens.token().await.unwrap(), first);
        *now.lock().unwrap() = t0() + 4 * MINUTE;
        assert_ne!(tokens.token().await.unwrap(), first);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_signing() {
        let (tokens, calls, _) = provider(Counting::default());
        let tokens = Arc::new(tokens);
        let all = futures::future::join_all((0..8).map(|_| {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move { tokens.token().await.unwrap() })
        }))
        .await;
        let all: Vec<String> = all.into_iter().map(Result::unwrap).collect();
        assert!(all.iter().all(|t| t == &all[0]));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_credentials_failure_is_reported_and_not_cached() {
        let (tokens, calls, _) = provider(Counting {
            fail: true,
            ..Default::default()
        });
        assert!(matches!(
            tokens.token().await,
            Err(EksTokenError::Credentials(_))
        ));
        assert!(tokens.token().await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_token_expires_fourteen_minutes_after_signing() {
        let creds = Credentials::new("AKID", "secret", None, None, "test");
        let token = presign_token("tidb-east", "us-west-2", &creds, t0()).unwrap();
        assert_eq!(token.expires_at, t0() + 14 * MINUTE);
        assert_eq!(token.refresh_at(), t0() + 13 * MINUTE);
        assert!(token.value.starts_with(TOKEN_PREFIX));
        assert!(!token.value.contains('='));
        assert!(!format!("{token:?}").contains(TOKEN_PREFIX));
    }

    #[test]
    fn the_sts_host_is_regional_in_the_region_partition() {
        assert_eq!(sts_host("us-east-1"), "sts.us-east-1.amazonaws.com");
        assert_eq!(
            sts_host("cn-northwest-1"),
            "sts.cn-northwest-1.amazonaws.com.cn"
        );
    }

    /// What `e` is read as.
    fn read(e: &ExecConfig) -> Option<AwsGetToken> {
        AwsGetToken::from_exec(e).unwrap()
    }

    /// The `aws eks get-token` of `cluster_id`.
    fn get_token(
        cluster_id: &str,
        region: Option<&str>,
        role_arn: Option<&str>,
    ) -> Option<AwsGetToken> {
        Some(AwsGetToken {
            cluster_id: cluster_id.into(),
            region: region.map(String::from),
            role_arn: role_arn.map(String::from),
        })
    }

    fn exec(command: &str, args: &[&str], env: &[(&str, &str)]) -> ExecConfig {
        let env: Vec<_> = env
            .iter()
            .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": args,
            "env": env,
        }))
        .expect("an exec config")
    }

    #[test]
    fn the_exec_of_aws_eks_update_kubeconfig_is_recognised() {
        let e = exec(
            "aws",
            &[
                "--region",
                "us-west-2",
                "eks",
                "get-token",
                "--cluster-name",
                "tidb-east",
                "--output",
                "json",
            ],
            &[("AWS_PROFILE", "ops")],
        );
        assert_eq!(read(&e), get_token("tidb-east", Some("us-west-2"), None));
    }

    #[test]
    fn equals_options_role_arn_cluster_id_and_env_region_are_read() {
        let e = exec(
            "/usr/local/bin/aws",
            &[
                "eks",
                "get-token",
                "--cluster-name=tidb-east",
                "--cluster-id=0123abcd",
                "--role-arn",
                "arn:aws:iam::111122223333:role/brfed",
            ],
            &[("AWS_DEFAULT_REGION", "eu-west-1")],
        );
        assert_eq!(
            read(&e),
            get_token(
                "0123abcd",
                Some("eu-west-1"),
                Some("arn:aws:iam::111122223333:role/brfed")
            )
        );
    }

    #[test]
    fn other_execs_are_left_alone_and_a_nameless_get_token_is_refused() {
        let authenticator = exec("aws-iam-authenticator", &["token", "-i", "tidb-east"], &[]);
        assert_eq!(read(&authenticator), None);
        let other = exec("aws", &["sts", "get-caller-identity"], &[]);
        assert_eq!(read(&other), None);
        let nameless = exec("aws", &["eks", "get-token"], &[]);
        assert!(matches!(
            AwsGetToken::from_exec(&nameless),
            Err(EksTokenError::Exec(_))
        ));
        let dangling = exec("aws", &["eks", "get-token", "--cluster-name"], &[]);
        assert!(matches!(
            AwsGetToken::from_exec(&dangling),
            Err(EksTokenError::Exec(_))
        ));
    }
}
