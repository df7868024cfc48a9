//! EKS tokens: known answers from an independent implementation (botocore), and the kube
//! client sending them at the HTTP boundary.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use brfed_adapters::KubeRegistry;
use brfed_adapters::eks_token::{
    EksTokenProvider, TOKEN_PREFIX, client, presign_token, replace_aws_exec,
};
use brfed_core::ports::{DataPlanes, MemberKind};
use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE/session+token==";

struct Vector {
    name: &'static str,
    region: &'static str,
    cluster: &'static str,
    session_token: Option<&'static str>,
    signing_time: &'static str,
    url: &'static str,
    token: &'static str,
}

// Presigned by botocore 1.44.5 the way `aws eks get-token` does, offline, with a frozen clock.
// Regenerate (and paste the `url`/`token` fields here) with, from the repository root:
//     ~/.cache/brfed/venv/bin/python functions/adapters/tests/eks_token_kat.py
const VECTORS: &[Vector] = &[
    Vector {
        name: "static-credentials",
        region: "us-west-2",
        cluster: "tidb-east",
        session_token: None,
        signing_time: "2026-01-02T03:04:05Z",
        url: "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=8708ba612f8b62bf1547f433b23d8c96fd90e0f98c29973937ee9f78b8251d7d",
        token: "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjYwMTAyJTJGdXMtd2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNjAxMDJUMDMwNDA1WiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9ODcwOGJhNjEyZjhiNjJiZjE1NDdmNDMzYjIzZDhjOTZmZDkwZTBmOThjMjk5NzM5MzdlZTlmNzhiODI1MWQ3ZA",
    },
    Vector {
        name: "session-credentials",
        region: "us-west-2",
        cluster: "tidb-east",
        session_token: Some(SESSION_TOKEN),
        signing_time: "2026-01-02T03:04:05Z",
        url: "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2Fsession%2Btoken%3D%3D&X-Amz-Signature=752579853f81fc51b3ef191e8c0f984a77f5a8241637328a455bbbe32d2e59eb",
        token: "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjYwMTAyJTJGdXMtd2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNjAxMDJUMDMwNDA1WiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TZWN1cml0eS1Ub2tlbj1JUW9KYjNKcFoybHVYMlZqRVhBTVBMRSUyRnNlc3Npb24lMkJ0b2tlbiUzRCUzRCZYLUFtei1TaWduYXR1cmU9NzUyNTc5ODUzZjgxZmM1MWIzZWYxOTFlOGMwZjk4NGE3N2Y1YTgyNDE2MzczMjhhNDU1YmJiZTMyZDJlNTllYg",
    },
    Vector {
        name: "other-region-and-day",
        region: "eu-central-1",
        cluster: "tidb-west",
        session_token: Some(SESSION_TOKEN),
        signing_time: "2025-12-31T23:59:59Z",
        url: "https://sts.eu-central-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20251231%2Feu-central-1%2Fsts%2Faws4_request&X-Amz-Date=20251231T235959Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2Fsession%2Btoken%3D%3D&X-Amz-Signature=00147ab2291f84b4a76d8fee76f56543071c39d1380a2a7770734f9e50019a07",
        token: "k8s-aws-v1.aHR0cHM6Ly9zdHMuZXUtY2VudHJhbC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjUxMjMxJTJGZXUtY2VudHJhbC0xJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNTEyMzFUMjM1OTU5WiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TZWN1cml0eS1Ub2tlbj1JUW9KYjNKcFoybHVYMlZqRVhBTVBMRSUyRnNlc3Npb24lMkJ0b2tlbiUzRCUzRCZYLUFtei1TaWduYXR1cmU9MDAxNDdhYjIyOTFmODRiNGE3NmQ4ZmVlNzZmNTY1NDMwNzFjMzlkMTM4MGEyYTc3NzA3MzRmOWU1MDAxOWEwNw",
    },
    Vector {
        name: "china-partition",
        region: "cn-north-1",
        cluster: "tidb-cn",
        session_token: None,
        signing_time: "2026-01-02T03:04:05Z",
        url: "https://sts.cn-north-1.amazonaws.com.cn/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Fcn-north-1%2Fsts%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=1f588c3f280b39b1ca47eeaed89bf203b8c6927cd19117a48e97d2365320fb0a",
        token: "k8s-aws-v1.aHR0cHM6Ly9zdHMuY24tbm9ydGgtMS5hbWF6b25hd3MuY29tLmNuLz9BY3Rpb249R2V0Q2FsbGVySWRlbnRpdHkmVmVyc2lvbj0yMDExLTA2LTE1JlgtQW16LUFsZ29yaXRobT1BV1M0LUhNQUMtU0hBMjU2JlgtQW16LUNyZWRlbnRpYWw9QUtJREVYQU1QTEUlMkYyMDI2MDEwMiUyRmNuLW5vcnRoLTElMkZzdHMlMkZhd3M0X3JlcXVlc3QmWC1BbXotRGF0ZT0yMDI2MDEwMlQwMzA0MDVaJlgtQW16LUV4cGlyZXM9NjAmWC1BbXotU2lnbmVkSGVhZGVycz1ob3N0JTNCeC1rOHMtYXdzLWlkJlgtQW16LVNpZ25hdHVyZT0xZjU4OGMzZjI4MGIzOWIxY2E0N2VlYWVkODliZjIwM2I4YzY5MjdjZDE5MTE3YTQ4ZTk3ZDIzNjUzMjBmYjBh",
    },
];

fn time(rfc3339: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .with_timezone(&chrono::Utc)
        .into()
}

fn credentials(session_token: Option<&str>) -> Credentials {
    Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        session_token.map(str::to_owned),
        None,
        "kat",
    )
}

/// scheme://host/path and the query parameters of a URL, percent-encoded as they are.
fn parts(url: &str) -> (&str, BTreeMap<&str, &str>) {
    let (base, query) = url.split_once('?').expect("a query");
    let params = query
        .split('&')
        .map(|kv| kv.split_once('=').expect("name=value"))
        .collect();
    (base, params)
}

/// Our token of vector `v`.
fn presigned(v: &Vector) -> brfed_adapters::eks_token::Token {
    presign_token(
        v.cluster,
        v.region,
        &credentials(v.session_token),
        time(v.signing_time),
    )
    .expect("presigns")
}

#[test]
fn presigned_urls_match_botocore_parameter_for_parameter() {
    for v in VECTORS {
        let token = presigned(v);
        let (ours_base, ours) = parts(&token.url);
        let (theirs_base, theirs) = parts(v.url);
        assert_eq!(ours_base, theirs_base, "{}: endpoint", v.name);
        assert_eq!(
            ours.get("X-Amz-Signature"),
            theirs.get("X-Amz-Signature"),
            "{}: signature",
            v.name
        );
        assert_eq!(ours, theirs, "{}: query parameters", v.name);
    }
}

#[test]
fn tokens_match_botocore_byte_for_byte() {
    for v in VECTORS {
        let token = presigned(v);
        assert_eq!(token.url, v.url, "{}: url", v.name);
        assert_eq!(token.value, v.token, "{}: token", v.name);
        assert_eq!(token.signed_at, time(v.signing_time));
    }
}

#[test]
fn the_vectors_cover_static_and_session_credentials() {
    assert!(VECTORS.iter().any(|v| v.session_token.is_none()));
    assert!(VECTORS.iter().any(|v| v.session_token.is_some()));
    for v in VECTORS {
        let decoded = URL_SAFE_NO_PAD
            .decode(v.token.strip_prefix(TOKEN_PREFIX).expect("prefix"))
            .expect("base64url without padding");
        assert_eq!(decoded, v.url.as_bytes(), "{}", v.name);
        assert!(v.url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&"));
        assert!(v.url.contains("X-Amz-Expires=60&"));
    }
}

/// A stand-in API server: answers every request with an empty list and reports the
/// `Authorization` header each request carried.
async fn api_server() -> (String, mpsc::UnboundedReceiver<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let authorization = head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_owned())
                });
                let _ = tx.send(authorization);
                let body = r#"{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadataList","metadata":{"resourceVersion":"1"},"items":[]}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, rx)
}

/// The presigned URL inside a `Bearer k8s-aws-v1.…` header.
fn presigned_url(authorization: &str) -> String {
    let token = authorization
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    let url = URL_SAFE_NO_PAD
        .decode(token.strip_prefix(TOKEN_PREFIX).expect("an EKS token"))
        .expect("base64url");
    String::from_utf8(url).expect("utf-8")
}

async fn get(client: &kube::Client) {
    client
        .request_text(http::Request::get("/version").body(Vec::new()).unwrap())
        .await
        .expect("the stand-in answers");
}

#[tokio::test]
async fn the_kube_client_sends_a_fresh_token_once_the_cached_one_is_due() {
    let (url, mut seen) = api_server().await;
    let now = Arc::new(Mutex::new(time("2026-01-02T03:04:05Z")));
    let clock = {
        let now = Arc::clone(&now);
        Arc::new(move || *now.lock().unwrap())
    };
    let tokens = Arc::new(
        EksTokenProvider::new(
            SharedCredentialsProvider::new(credentials(None)),
            "tidb-east",
            "us-west-2",
        )
        .with_clock(clock),
    );
    let kube = client(Config::new(url.parse().unwrap()), Some(&tokens)).expect("a client");

    get(&kube).await;
    let first = seen
        .recv()
        .await
        .flatten()
        .expect("an Authorization header");
    // the first vector: same credentials, cluster, region and time
    assert_eq!(first, format!("Bearer {}", VECTORS[0].token));

    *now.lock().unwrap() += Duration::from_secs(12 * 60);
    get(&kube).await;
    assert_eq!(seen.recv().await.flatten().as_deref(), Some(first.as_str()));

    *now.lock().unwrap() += Duration::from_secs(60);
    get(&kube).await;
    let refreshed = seen
        .recv()
        .await
        .flatten()
        .expect("an Authorization header");
    assert_ne!(refreshed, first);
    assert!(presigned_url(&refreshed).contains("X-Amz-Date=20260102T031705Z&"));
}

fn eks_kubeconfig(server: &str) -> String {
    // what `aws eks update-kubeconfig --name tidb-east --region us-west-2` writes (CA left out:
    // the stand-in speaks plain HTTP)
    format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: arn:aws:eks:us-west-2:111122223333:cluster/tidb-east
  cluster:
    server: {server}
contexts:
- name: tidb-east
  context:
    cluster: arn:aws:eks:us-west-2:111122223333:cluster/tidb-east
    user: arn:aws:eks:us-west-2:111122223333:cluster/tidb-east
current-context: tidb-east
users:
- name: arn:aws:eks:us-west-2:111122223333:cluster/tidb-east
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args:
      - --region
      - us-west-2
      - eks
      - get-token
      - --cluster-name
      - tidb-east
      - --output
      - json
      env:
      - name: AWS_PROFILE
        value: operator-laptop
"#
    )
}

fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .credentials_provider(SharedCredentialsProvider::new(credentials(Some(
            SESSION_TOKEN,
        ))))
        .build()
}

#[tokio::test]
async fn an_aws_eks_get_token_exec_is_replaced_by_in_process_tokens() {
    let kc = Kubeconfig::from_yaml(&eks_kubeconfig("http://127.0.0.1:1")).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    let tokens = replace_aws_exec(&mut config, &sdk_config())
        .await
        .expect("replaced")
        .expect("an EKS user");
    assert!(config.auth_info.exec.is_none(), "kube must not run `aws`");
    assert_eq!(tokens.cluster_id(), "tidb-east");
    assert_eq!(tokens.region(), "us-west-2", "the exec's --region wins");
}

#[tokio::test]
async fn a_user_without_an_aws_exec_is_left_to_kube() {
    let mut config = Config::new("http://127.0.0.1:1".parse().unwrap());
    config.auth_info.token = Some("static".to_owned().into());
    let replaced = replace_aws_exec(&mut config, &sdk_config()).await.unwrap();
    assert!(replaced.is_none());
}

#[tokio::test]
async fn the_registry_reaches_an_eks_data_plane_without_the_aws_binary() {
    let (url, mut seen) = api_server().await;
    let planes = KubeRegistry::from_yaml(&eks_kubeconfig(&url), &sdk_config())
        .await
        .expect("a registry");
    planes
        .probe(MemberKind::Backup, "tidb-east", "tidb")
        .await
        .expect("the probe succeeds");
    let authorization = seen
        .recv()
        .await
        .flatten()
        .expect("an Authorization header");
    let presigned = presigned_url(&authorization);
    assert!(presigned.starts_with(
        "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
    ));
    assert!(presigned.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&"));
    assert!(presigned.contains("X-Amz-Security-Token="));
}

async fn replaced(kubeconfig: &str) -> Result<Option<Arc<EksTokenProvider>>, String> {
    let kc = Kubeconfig::from_yaml(kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    replace_aws_exec(&mut config, &sdk_config())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn without_a_region_in_the_exec_the_function_region_is_used() {
    let kubeconfig =
        eks_kubeconfig("http://127.0.0.1:1").replace("      - --region\n      - us-west-2\n", "");
    let tokens = replaced(&kubeconfig).await.unwrap().expect("an EKS user");
    assert_eq!(tokens.region(), "eu-central-1");
}

#[tokio::test]
async fn a_role_arn_without_a_time_source_is_refused_rather_than_panicking() {
    let kubeconfig = eks_kubeconfig("http://127.0.0.1:1").replace(
        "      - --output\n",
        "      - --role-arn\n      - arn:aws:iam::111122223333:role/brfed\n      - --output\n",
    );
    let error = replaced(&kubeconfig).await.expect_err("refused");
    assert!(error.contains("--role-arn"), "{error}");
}

#[tokio::test]
async fn exec_plugins_other_than_aws_eks_get_token_are_refused_by_name() {
    let kubeconfig = eks_kubeconfig("http://127.0.0.1:1").replace(
        "command: aws",
        "command: /usr/local/bin/gke-gcloud-auth-plugin",
    );
    let Err(e) = KubeRegistry::from_yaml(&kubeconfig, &sdk_config()).await else {
        panic!("a gke-gcloud-auth-plugin exec was accepted");
    };
    assert_eq!(e.name(), "Configuration");
    let m = e.to_string();
    assert!(
        m.contains("gke-gcloud-auth-plugin") && m.contains("aws eks get-token"),
        "{m}"
    );

    let mut config = Config::new("http://127.0.0.1:1".parse().unwrap());
    config.auth_info.auth_provider = Some(
        serde_json::from_value(serde_json::json!({
            "name": "gcp", "config": {"cmd-path": "/usr/bin/gcloud"}
        }))
        .unwrap(),
    );
    let Err(e) = replace_aws_exec(&mut config, &sdk_config()).await else {
        panic!("an auth-provider with cmd-path was accepted");
    };
    assert!(e.to_string().contains("cmd-path"), "{e}");
}
