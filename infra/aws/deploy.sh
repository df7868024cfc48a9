#!/usr/bin/env bash
# Deploys infra/aws/template.yaml with the AWS CLI of brfed's venv (what `make deploy` runs).
#
#   infra/aws/deploy.sh preflight   # fails fast: no region, no credentials, emulator endpoint, no artifact bucket
#   infra/aws/deploy.sh deploy      # cloudformation package (uploads the zips and the ASL) + deploy
#
# Environment (docs/deploy.md has the parameters and the IAM):
#   BRFED_STACK            stack name (default brfed)
#   BRFED_ARTIFACT_BUCKET  existing bucket `cloudformation package` uploads the zips and ASL to (required)
#   BRFED_PARAMS           Key=Value parameter overrides, space separated (KubeconfigLocation,
#                          BackupBucketName and BackupPrefix are required on the first deploy)
#   AWS_PROFILE / AWS_REGION / credentials: as for any AWS CLI call
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${BRFED_CACHE:-$HOME/.cache/brfed}"
stack="${BRFED_STACK:-brfed}"
artifacts="${BRFED_ARTIFACT_BUCKET:-}"
params="${BRFED_PARAMS:-}"

die() { echo "deploy: $*" >&2; exit 1; }

venv="$("$repo/infra/local/setup-python.sh")"
aws() { "$venv/bin/aws" "$@"; }

preflight() {
  if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
    die "AWS_ENDPOINT_URL is set ($AWS_ENDPOINT_URL): this shell talks to an emulator (make world-env?).
  The local world deploys itself (infra/local/deploy.py); open a clean shell to deploy to AWS."
  fi
  local region
  region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
  [[ -n "$region" ]] || die "no AWS region: set AWS_REGION (or a region in your AWS profile)."
  local who
  if ! who="$(AWS_REGION="$region" aws sts get-caller-identity --query Arn --output text 2>&1)"; then
    die "no usable AWS credentials (aws sts get-caller-identity failed):
  ${who//$'\n'/$'\n'  }
  Configure credentials (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and retry.
  Nothing was built or uploaded."
  fi
  [[ -n "$artifacts" ]] || die "BRFED_ARTIFACT_BUCKET is not set: name an existing bucket in $region for the
  function zips and the state machine definition (aws s3 mb s3://<name> makes one)."
  echo "deploy: stack $stack in $region as $who; artifacts to s3://$artifacts/brfed-artifacts/"
}

deploy() {
  preflight
  [[ -e "$here/lambda" ]] || die "infra/aws/lambda is missing: run make package first."
  local out="$cache/deploy/$stack"
  mkdir -p "$out"
  aws cloudformation package \
    --template-file "$here/template.yaml" \
    --s3-bucket "$artifacts" --s3-prefix brfed-artifacts \
    --output-template-file "$out/packaged.yaml"
  # shellcheck disable=SC2086 # BRFED_PARAMS is a list of Key=Value words
  # The template is over CloudFormation's 51,200-byte inline limit: deploy uploads it too.
  aws cloudformation deploy \
    --template-file "$out/packaged.yaml" \
    --s3-bucket "$artifacts" --s3-prefix brfed-artifacts \
    --stack-name "$stack" \
    --capabilities CAPABILITY_IAM \
    --no-fail-on-empty-changeset \
    ${params:+--parameter-overrides $params}
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
}

case "${1:-}" in
  preflight) preflight ;;
  deploy) deploy ;;
  *) die "usage: $0 preflight|deploy" ;;
esac
