#!/usr/bin/env python3
"""Known-answer vectors for brfed's EKS tokens, made by an independent implementation: botocore.

It presigns STS GetCallerIdentity the way `aws eks get-token` does (a boto3 STS client,
`generate_presigned_url('get_caller_identity', ExpiresIn=60)`, the `x-k8s-aws-id` header added
before signing), offline, with fixed credentials and a frozen clock, and prints the vectors as
JSON. `functions/adapters/tests/eks_token.rs` holds its output; regenerate with

    ~/.cache/brfed/venv/bin/python functions/adapters/tests/eks_token_kat.py

No network access: presigning only resolves the endpoint (from botocore's bundled rules) and
signs. Nothing from ~/.aws or the environment is read.
"""

import base64
import datetime
import json
import os
import sys

# Hermetic: no profile, no shared config, no environment credentials, regional STS endpoints.
for name in list(os.environ):
    if name.startswith("AWS_"):
        del os.environ[name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_STS_REGIONAL_ENDPOINTS"] = "regional"

import boto3  # noqa: E402
import botocore  # noqa: E402
import botocore.auth  # noqa: E402

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
# A made-up session token holding the characters that must be percent-encoded (+ / =).
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE/session+token=="

VECTORS = [
    # name, region, cluster, session token, signing time (UTC)
    ("static-credentials", "us-west-2", "tidb-east", None, "2026-01-02T03:04:05Z"),
    ("session-credentials", "us-west-2", "tidb-east", SESSION_TOKEN, "2026-01-02T03:04:05Z"),
    ("other-region-and-day", "eu-central-1", "tidb-west", SESSION_TOKEN, "2025-12-31T23:59:59Z"),
    ("china-partition", "cn-north-1", "tidb-cn", None, "2026-01-02T03:04:05Z"),
]

CLUSTER_HEADER = "x-k8s-aws-id"
TOKEN_PREFIX = "k8s-aws-v1."


def presign(region, cluster, session_token, when):
    frozen = datetime.datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ")
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=session_token,
        region_name=region,
    )
    sts = session.client("sts")

    # As the AWS CLI does: the cluster name travels as a signed header of the presigned request.
    def add_cluster_header(request, **_):
        request.headers[CLUSTER_HEADER] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)

    # Freeze SigV4's clock (botocore.auth reads it through this module-level name).
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: frozen
    try:
        url = sts.generate_presigned_url(
            "get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET"
        )
    finally:
        botocore.auth.get_current_datetime = original
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return url, token


def main():
    out = []
    for name, region, cluster, session_token, when in VECTORS:
        url, token = presign(region, cluster, session_token, when)
        out.append(
            {
                "name": name,
                "region": region,
                "cluster": cluster,
                "accessKeyId": ACCESS_KEY,
                "secretAccessKey": SECRET_KEY,
                "sessionToken": session_token,
                "signingTime": when,
                "url": url,
                "token": token,
            }
        )
    json.dump({"botocore": botocore.__version__, "vectors": out}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
