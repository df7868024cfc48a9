#!/usr/bin/env python3
"""Deploys brfed's AWS resources into the local emulator (infra/local/aws.sh start first).

    "$(infra/local/setup-python.sh)/bin/python" infra/local/deploy.py [--with-fixtures]

* S3 bucket brfed-backups, and the buckets of BRFED_BACKUP_LOCATIONS.
* One Lambda function per crate under functions/ that has src/main.rs (tests/smoke-fn too with
  --with-fixtures), named after the crate directory; moto needs them to exist: the emulator
  answers Invoke of an unknown function with ResourceNotFoundException, as Lambda does.
* One state machine per statemachines/*.asl.json (tests/fixtures/*.asl.json too with
  --with-fixtures), named after the file stem, with ${...} placeholders substituted:
  ${<CamelCrate>FunctionArn}, ${<CamelStem>StateMachineArn}, ${CatalogBucket}. An unknown
  placeholder is an error.
* The SQS queues of rules.json ("queues"), and the asynchronous invoke config of the functions it
  names ("asyncInvokeConfigs": retries, event age, OnFailure destination queue), as the AWS
  template's AWS::Lambda::EventInvokeConfig does; the emulator acts on both.
* EventBridge rules of infra/local/rules.json (and tests/fixtures/rules.json with
  --with-fixtures), format below; placeholders are substituted there too.
* $WORLD/deployed.env: export BRFED_<STEM>_STATE_MACHINE_ARN=... lines.
* The CloudFormation stack `brfed` (--stack-name): the Outputs of infra/aws/template.yaml (keys and
  descriptions as written there), each Value evaluated for this world (a Ref/GetAtt of a state
  machine, function or queue of the template is the world's resource of the same name, a parameter
  is the world's value: CatalogBucketName = the bucket above), and no other resource: the world's
  resources are the ones deployed above (named without the NamePrefix), not the template's. An
  output whose value names something the world does not have is left out, and said. This is what
  `brfed --stack brfed` reads (DescribeStacks).

rules.json:
    {"queues": [{"name": "brfed-events-dlq", "description": "optional"}],   # optional
     "asyncInvokeConfigs": [                                                 # optional
       {"function": "backup-abort", "maximumRetryAttempts": 2,               # 0..2 (default 2)
        "maximumEventAgeInSeconds": 21600,                                   # 60..21600 (optional)
        "onFailure": "brfed-events-dlq"}],                                   # a queue of "queues"
     "rules": [
      {"name": "smoke-failed", "description": "optional",
       "eventPattern": {"source": ["aws.states"], ...}      # or "scheduleExpression": "rate(5 minutes)"
       "state": "ENABLED",                                   # optional
       "needsFixtures": true,                                # optional: only with --with-fixtures
                                                             # (its targets are fixtures)
       "targets": [
         {"id": "notify", "function": "smoke-fn"},           # a function crate name,
         {"id": "run", "stateMachine": "smoke",              # or a state machine stem,
          "input": {"x": 1}},                                # constant input (JSON value), or
         {"id": "raw", "arn": "${SmokeFnFunctionArn}",       # any ARN,
          "inputPath": "$.detail"},                          # or a JSONPath into the event
         {"id": "safe", "function": "backup-abort",          # optional on any target:
          "retryPolicy": {"maximumRetryAttempts": 185,       #   EventBridge's RetryPolicy
                          "maximumEventAgeInSeconds": 86400},
          "deadLetterQueue": "brfed-events-dlq"}             #   DeadLetterConfig: a queue of "queues"
       ]}]}

Every StartExecution caller must pass a `name` (moto names unnamed executions "None" and the
second unnamed one collides; the local emulator patches that, real code should not rely on it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
REGION = "us-west-2"
ACCOUNT = "123456789012"
BUCKET = os.environ.get("BRFED_BUCKET", "brfed-backups")
LAMBDA_ROLE = "brfed-local-lambda"
STATES_ROLE = "brfed-local-states"
EVENTS_ROLE = "brfed-local-events"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")
TEMPLATE = REPO / "infra" / "aws" / "template.yaml"
# The NamePrefix the world's queue names are made with (brfed-events-dlq).
WORLD_PREFIX = "brfed"


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part)


def upper_snake(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def state_machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def function_crates(with_fixtures: bool) -> dict[str, Path]:
    dirs = sorted(p for p in (REPO / "functions").iterdir() if (p / "src" / "main.rs").is_file())
    if with_fixtures and (REPO / "tests" / "smoke-fn" / "src" / "main.rs").is_file():
        dirs.append(REPO / "tests" / "smoke-fn")
    crates = {}
    for d in dirs:
        manifest = (d / "Cargo.toml").read_text(encoding="utf-8")
        m = re.search(r'^name\s*=\s*"([^"]+)"', manifest, re.M)
        if m and m.group(1) != d.name:
            sys.exit(f"deploy: crate {d} is named {m.group(1)!r}; a function crate's package (and so its "
                     f"binary) must be named like its directory, the function name")
        crates[d.name] = d
    return crates


def definitions(with_fixtures: bool) -> dict[str, Path]:
    files = sorted((REPO / "statemachines").glob("*.asl.json"))
    if with_fixtures:
        files += sorted((REPO / "tests" / "fixtures").glob("*.asl.json"))
    out: dict[str, Path] = {}
    for f in files:
        stem = f.name[: -len(".asl.json")]
        if stem in out:
            sys.exit(f"deploy: two state machines named {stem}: {out[stem]} and {f}")
        out[stem] = f
    return out


def substitute(text: str, mapping: dict[str, str], where: Path) -> str:
    missing = sorted({m.group(1) for m in PLACEHOLDER.finditer(text) if m.group(1) not in mapping})
    if missing:
        known = ", ".join(sorted(mapping))
        sys.exit(f"deploy: {where}: no value for placeholder(s) {', '.join('${' + m + '}' for m in missing)}"
                 f"\n  known: {known}")
    return PLACEHOLDER.sub(lambda m: mapping[m.group(1)], text)


def ensure_role(iam, name: str, service: str) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(policy))
    except ClientError as e:
        if e.response["Error"]["Code"] != "EntityAlreadyExists":
            raise


def dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n# placeholder: the local world runs the cargo-built binary\n")
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description="Deploy brfed's AWS resources into the local emulator.")
    ap.add_argument("--with-fixtures", action="store_true",
                    help="also deploy tests/smoke-fn, tests/fixtures/*.asl.json and tests/fixtures/rules.json")
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:15000"))
    ap.add_argument("--function-timeout", type=int, default=300,
                    help="Timeout (s) of every function: the emulator stops waiting for an invocation then")
    ap.add_argument("--world", default=os.environ.get("BRFED_WORLD_DIR") or str(REPO / ".world"))
    ap.add_argument("--stack-name", default="brfed",
                    help="name of the CloudFormation stack holding the template's outputs (brfed --stack NAME)")
    args = ap.parse_args()

    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name=REGION,
    )
    cfg = Config(retries={"max_attempts": 2}, read_timeout=60)
    client = lambda svc: session.client(svc, endpoint_url=args.endpoint, config=cfg)  # noqa: E731
    s3, iam, lam, sfn, events, sqs, cfn = (
        client(s) for s in ("s3", "iam", "lambda", "stepfunctions", "events", "sqs", "cloudformation")
    )

    # --- buckets: the catalog's, and those of the backup locations ---------------------------------
    locations = os.environ.get("BRFED_BACKUP_LOCATIONS", "")
    buckets = [BUCKET] + [e.strip().split("/", 1)[0] for e in locations.split(",") if e.strip()]
    for bucket in dict.fromkeys(buckets):
        try:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
            print(f"bucket {bucket}: created")
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
            print(f"bucket {bucket}: exists")

    ensure_role(iam, LAMBDA_ROLE, "lambda.amazonaws.com")
    ensure_role(iam, STATES_ROLE, "states.amazonaws.com")
    ensure_role(iam, EVENTS_ROLE, "events.amazonaws.com")

    # --- functions ----------------------------------------------------------------------------------
    crates = function_crates(args.with_fixtures)
    existing = set()
    for page in lam.get_paginator("list_functions").paginate():
        existing.update(f["FunctionName"] for f in page["Functions"])
    for name in crates:
        if name in existing:
            lam.update_function_configuration(FunctionName=name, Timeout=args.function_timeout)
            print(f"function {name}: updated")
        else:
            lam.create_function(
                FunctionName=name,
                Runtime="provided.al2023",
                Handler="bootstrap",
                Role=role_arn(LAMBDA_ROLE),
                Code={"ZipFile": dummy_zip()},
                Timeout=args.function_timeout,
                MemorySize=128,
                Architectures=["x86_64"],
            )
            print(f"function {name}: created")

    # --- placeholders -------------------------------------------------------------------------------
    sms = definitions(args.with_fixtures)
    mapping = {"CatalogBucket": BUCKET}
    mapping.update({f"{camel(n)}FunctionArn": function_arn(n) for n in crates})
    mapping.update({f"{camel(s)}StateMachineArn": state_machine_arn(s) for s in sms})

    # --- state machines -----------------------------------------------------------------------------
    current = {}
    for page in sfn.get_paginator("list_state_machines").paginate():
        current.update({m["name"]: m["stateMachineArn"] for m in page["stateMachines"]})
    deployed: dict[str, str] = {}
    for stem, path in sms.items():
        definition = substitute(path.read_text(encoding="utf-8"), mapping, path)
        try:
            json.loads(definition)
        except ValueError as e:
            sys.exit(f"deploy: {path}: not JSON after substitution: {e}")
        try:
            if stem in current:
                sfn.update_state_machine(stateMachineArn=current[stem], definition=definition,
                                         roleArn=role_arn(STATES_ROLE))
                arn = current[stem]
                print(f"state machine {stem}: updated")
            else:
                arn = sfn.create_state_machine(name=stem, definition=definition, roleArn=role_arn(STATES_ROLE),
                                               type="STANDARD")["stateMachineArn"]
                print(f"state machine {stem}: created")
        except ClientError as e:
            sys.exit(f"deploy: {path}: {e}")
        deployed[stem] = arn

    # --- queues, async invoke configs, rules --------------------------------------------------------
    rule_files = [REPO / "infra" / "local" / "rules.json"]
    if args.with_fixtures:
        rule_files.append(REPO / "tests" / "fixtures" / "rules.json")
    docs = [(rf, json.loads(substitute(rf.read_text(encoding="utf-8"), mapping, rf)))
            for rf in rule_files if rf.is_file()]
    queues: dict[str, str] = {}
    for rf, doc in docs:
        for q in doc.get("queues", []):
            url = sqs.create_queue(QueueName=q["name"])["QueueUrl"]
            queues[q["name"]] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            print(f"queue {q['name']}: {queues[q['name']]}")
    for rf, doc in docs:
        for c in doc.get("asyncInvokeConfigs", []):
            deploy_invoke_config(lam, c, crates, queues, rf)
    for rf, doc in docs:
        for rule in doc.get("rules", []):
            if rule.get("needsFixtures") and not args.with_fixtures:
                print(f"rule {rule['name']}: skipped (needs --with-fixtures)")
                continue
            deploy_rule(events, rule, crates, deployed, queues, rf)

    # --- the stack: the template's outputs with the world's values ---------------------------------
    deploy_stack(cfn, args.stack_name, crates, deployed, queues)

    # --- deployed.env -------------------------------------------------------------------------------
    world = Path(args.world)
    world.mkdir(parents=True, exist_ok=True)
    lines = [f"export BRFED_{upper_snake(stem)}_STATE_MACHINE_ARN={arn}" for stem, arn in sorted(deployed.items())]
    fd, tmp = tempfile.mkstemp(dir=world, prefix=".deployed.env.")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    os.replace(tmp, world / "deployed.env")
    print(f"wrote {world / 'deployed.env'} ({len(lines)} state machine(s))")
    return 0


class Unresolved(Exception):
    """A template expression that names something the world does not have."""


def world_outputs(template: dict, crates: dict, deployed: dict, queues: dict, stack: str) -> tuple[dict, dict]:
    """The template's Outputs evaluated for this world: ({key: {Description, Value}}, {key: why left out})."""
    resources = template.get("Resources", {})
    params = {k: str(v["Default"]) for k, v in template.get("Parameters", {}).items() if "Default" in v}
    params.update({"NamePrefix": WORLD_PREFIX, "CatalogBucketName": BUCKET, "AWS::Region": REGION,
                   "AWS::AccountId": ACCOUNT, "AWS::StackName": stack, "AWS::Partition": "aws"})

    def sub(text: str) -> str:
        def one(m):
            if m.group(1) not in params:
                raise Unresolved(f"${{{m.group(1)}}}")
            return params[m.group(1)]
        return PLACEHOLDER.sub(one, text)

    def resource(name: str) -> str:
        r = resources[name]
        kind, props = r["Type"], r.get("Properties", {})
        # The world's state machines and functions are named without the prefix (volume-backup, schedule-tick).
        local = lambda prop: sub(value(props[prop])).removeprefix(f"{WORLD_PREFIX}-")  # noqa: E731
        if kind == "AWS::StepFunctions::StateMachine" and local("StateMachineName") in deployed:
            return deployed[local("StateMachineName")]
        if kind == "AWS::Lambda::Function" and local("FunctionName") in crates:
            return function_arn(local("FunctionName"))
        if kind == "AWS::SQS::Queue" and sub(value(props["QueueName"])) in queues:
            return queues[sub(value(props["QueueName"]))]
        raise Unresolved(f"{kind} {name}")

    def condition(name: str) -> bool:
        return truth(template["Conditions"][name])

    def truth(c) -> bool:
        (fn, a), = c.items()
        if fn == "Fn::Equals":
            return value(a[0]) == value(a[1])
        if fn == "Fn::Not":
            return not truth(a[0])
        if fn == "Fn::And":
            return all(truth(x) for x in a)
        if fn == "Fn::Or":
            return any(truth(x) for x in a)
        if fn == "Condition":
            return condition(a)
        raise Unresolved(fn)

    def value(e):
        if isinstance(e, (str, int, float)):
            return str(e)
        if isinstance(e, dict) and len(e) == 1:
            (fn, a), = e.items()
            if fn == "Ref":
                if a in params:
                    return params[a]
                if a in resources:
                    return resource(a)
            if fn == "Fn::GetAtt" and a[1] == "Arn":
                return resource(a[0])
            if fn == "Fn::If":
                return value(a[1] if condition(a[0]) else a[2])
            if fn == "Fn::Sub" and isinstance(a, str):
                return sub(a)
            if fn == "Fn::Select":
                return value(a[1])[int(a[0])] if not isinstance(a[1], str) else a[1]
            if fn == "Fn::Split":
                return value(a[1]).split(a[0])
        raise Unresolved(json.dumps(e))

    outputs, left_out = {}, {}
    for key, out in template.get("Outputs", {}).items():
        try:
            v = value(out["Value"])
        except (Unresolved, KeyError) as e:
            left_out[key] = str(e)
            continue
        outputs[key] = {"Value": v, **({"Description": out["Description"]} if "Description" in out else {})}
    return outputs, left_out


def deploy_stack(cfn, stack: str, crates: dict, deployed: dict, queues: dict) -> None:
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    outputs, left_out = world_outputs(template, crates, deployed, queues, stack)
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "brfed's local world: the Outputs of infra/aws/template.yaml with the world's values "
                       "(infra/local/deploy.py); the resources are the world's, deployed apart",
        # CloudFormation wants one resource; this one does nothing.
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": outputs,
    }
    try:
        cfn.delete_stack(StackName=stack)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ValidationError":
            raise
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(body))
    status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        sys.exit(f"deploy: stack {stack}: {status}")
    print(f"stack {stack}: {len(outputs)} output(s) of {TEMPLATE.relative_to(REPO)}: {', '.join(outputs)}")
    for key, why in left_out.items():
        print(f"stack {stack}: output {key} left out: the world has no {why}")


def queue_arn(queues: dict, name: str, where: Path, what: str) -> str:
    if name not in queues:
        sys.exit(f"deploy: {where}: {what}: unknown queue {name} (known: {', '.join(sorted(queues)) or 'none'})")
    return queues[name]


def deploy_invoke_config(lam, c: dict, crates: dict, queues: dict, where: Path) -> None:
    name = c["function"]
    if name not in crates:
        sys.exit(f"deploy: {where}: asyncInvokeConfigs: unknown function {name}")
    kwargs: dict = {"FunctionName": name, "MaximumRetryAttempts": c.get("maximumRetryAttempts", 2)}
    if "maximumEventAgeInSeconds" in c:
        kwargs["MaximumEventAgeInSeconds"] = c["maximumEventAgeInSeconds"]
    if "onFailure" in c:
        kwargs["DestinationConfig"] = {
            "OnFailure": {"Destination": queue_arn(queues, c["onFailure"], where, f"function {name}")}}
    # moto keeps every Put and answers Get with the first: delete first, so a redeploy replaces it
    try:
        lam.delete_function_event_invoke_config(FunctionName=name)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    lam.put_function_event_invoke_config(**kwargs)
    print(f"function {name}: async invoke config: {kwargs['MaximumRetryAttempts']} retries"
          + (f", on failure -> {c['onFailure']}" if "onFailure" in c else ""))


def deploy_rule(events, rule: dict, crates: dict, deployed: dict, queues: dict, where: Path) -> None:
    name = rule["name"]
    kwargs = {"Name": name, "State": rule.get("state", "ENABLED"), "Description": rule.get("description", "")}
    if "eventPattern" in rule:
        kwargs["EventPattern"] = json.dumps(rule["eventPattern"])
    if "scheduleExpression" in rule:
        kwargs["ScheduleExpression"] = rule["scheduleExpression"]
    if "EventPattern" not in kwargs and "ScheduleExpression" not in kwargs:
        sys.exit(f"deploy: {where}: rule {name} needs eventPattern or scheduleExpression")
    events.put_rule(**kwargs)
    targets = []
    for t in rule.get("targets", []):
        target = {"Id": t["id"]}
        if "function" in t:
            if t["function"] not in crates:
                sys.exit(f"deploy: {where}: rule {name}: unknown function {t['function']}")
            target["Arn"] = function_arn(t["function"])
        elif "stateMachine" in t:
            if t["stateMachine"] not in deployed:
                sys.exit(f"deploy: {where}: rule {name}: unknown state machine {t['stateMachine']}")
            target["Arn"] = deployed[t["stateMachine"]]
            target["RoleArn"] = role_arn(EVENTS_ROLE)
        elif "arn" in t:
            target["Arn"] = t["arn"]
            if ":states:" in t["arn"]:
                target["RoleArn"] = role_arn(EVENTS_ROLE)
        else:
            sys.exit(f"deploy: {where}: rule {name}: target {t['id']} needs function, stateMachine or arn")
        if "input" in t:
            target["Input"] = json.dumps(t["input"])
        if "inputPath" in t:
            target["InputPath"] = t["inputPath"]
        if "retryPolicy" in t:
            target["RetryPolicy"] = {
                "MaximumRetryAttempts": t["retryPolicy"].get("maximumRetryAttempts", 185),
                "MaximumEventAgeInSeconds": t["retryPolicy"].get("maximumEventAgeInSeconds", 86400)}
        if "deadLetterQueue" in t:
            target["DeadLetterConfig"] = {
                "Arn": queue_arn(queues, t["deadLetterQueue"], where, f"rule {name} target {t['id']}")}
        targets.append(target)
    old = {t["Id"] for t in events.list_targets_by_rule(Rule=name).get("Targets", [])}
    stale = sorted(old - {t["Id"] for t in targets})
    if stale:
        events.remove_targets(Rule=name, Ids=stale)
    if targets:
        events.put_targets(Rule=name, Targets=targets)
    kind = "schedule " + rule["scheduleExpression"] if "scheduleExpression" in rule else "event pattern"
    print(f"rule {name}: {kind}, {len(targets)} target(s)")


if __name__ == "__main__":
    sys.exit(main())
