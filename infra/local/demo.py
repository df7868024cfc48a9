#!/usr/bin/env python3
"""make demo: a federated backup of the seeded 3-cluster TiDB (tidb/basic on dp1..dp3) through
brfed's state machine on the local world, with live progress, then a summary.

Run with the world up and its env loaded (make demo does both). Uses only the AWS API (boto3 on
the emulator), the data planes' Kubernetes API (through the simulated operator's seeding), and the
simulated PD's log, the same things a user would look at.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import yaml

REPO = Path(__file__).resolve().parents[2]
BOLD, DIM, GREEN, RED, RESET = ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m") if sys.stdout.isatty() else ("",) * 5


def main() -> int:
    sfn = boto3.client("stepfunctions")
    s3 = boto3.client("s3")
    ec2 = boto3.client("ec2")
    arn_sm = os.environ["BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN"]
    name = time.strftime("demo-%Y%m%d-%H%M%S", time.gmtime())
    vbk = yaml.safe_load((REPO / "tests/fixtures/volumebackup.yaml").read_text())
    vbk["metadata"]["name"] = name
    vbk["spec"]["template"]["s3"]["prefix"] = f"demo/{name}"
    print(f"{BOLD}brfed demo{RESET}: federated EBS-snapshot backup of TiDB cluster tidb/basic spread over "
          f"{', '.join(c['k8sClusterName'] for c in vbk['spec']['clusters'])}")
    vols = ec2.describe_volumes(Filters=[{"Name": "tag:sim.brfed.dev/tidb-cluster", "Values": ["tidb-basic"]}])["Volumes"]
    print(f"  {len(vols)} TiKV volumes in {len({v['AvailabilityZone'] for v in vols})} AZs; input: tests/fixtures/volumebackup.yaml as VolumeBackup {name}")
    started = time.time()
    arn = sfn.start_execution(stateMachineArn=arn_sm, name=name, input=json.dumps(vbk))["executionArn"]
    print(f"  execution {arn}\n")
    seen = 0
    status = "RUNNING"
    while True:
        events = []
        token = None
        while True:
            kw = {"executionArn": arn, "maxResults": 1000}
            if token:
                kw["nextToken"] = token
            page = sfn.get_execution_history(**kw)
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                break
        for e in events[seen:]:
            t = time.time() - started
            if e["type"].endswith("StateEntered") and e["type"] != "ChoiceStateEntered":
                state = e["stateEnteredEventDetails"]["name"]
                if not state.endswith("?"):
                    print(f"  {DIM}{t:6.1f}s{RESET}  {state}")
            elif e["type"] == "TaskStateExited" or e["type"] == "LambdaFunctionSucceeded":
                pass
        seen = len(events)
        status = sfn.describe_execution(executionArn=arn)["status"]
        if status != "RUNNING":
            break
        time.sleep(0.3)
    d = sfn.describe_execution(executionArn=arn)
    took = time.time() - started
    if status != "SUCCEEDED":
        print(f"\n{RED}{status}{RESET}: {d.get('error')}: {d.get('cause')}")
        return 1
    doc = json.loads(d["output"])
    st = doc["status"]
    print(f"\n{GREEN}{BOLD}{st['phase']}{RESET} in {took:.1f} s  commitTs {st['commitTs']}  size {st['backupSizeReadable']}")
    print(f"  {'cluster':<8} {'member':<28} {'phase':<10} {'commitTs':<20} backupPath")
    for b in st["backups"]:
        print(f"  {b['k8sClusterName']:<8} {b['backupName']:<28} {b['phase']:<10} {b['commitTs']:<20} {b['backupPath']}")
    ids = []
    for b in st["backups"]:
        bucket_, prefix = b["backupPath"][len("s3://"):].split("/", 1)
        meta = json.load(s3.get_object(Bucket=bucket_, Key=f"{prefix}/backupmeta")["Body"])
        ids += [v["snapshot_id"] for store in meta["tikv"]["stores"] for v in store["volumes"]]
    snaps = ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]
    states = sorted({s["State"] for s in snaps})
    print(f"  EBS snapshots named in the members' backupmeta: {len(ids)}, found in EC2: {len(snaps)} ({', '.join(states)})")
    sim = os.environ.get("SIM_HTTP_ADDR", "127.0.0.1:18080")
    pd = json.load(urllib.request.urlopen(f"http://{sim}/pd/tidb-basic"))
    ev = [e for e in pd["events"] if e["kind"] in ("pause", "resume")]
    if len(ev) >= 2:
        print(f"  GC/PD schedulers: paused {ev[-2]['at']}, resumed {ev[-1]['at']}; paused now: {pd['paused']}")
    rec = doc["brfed"]
    print(f"  pause-window overhead seen by brfed: all snapshots created {rec.get('snapshotsCreatedObservedAt')} -> resume requested {rec.get('resumeRequestedAt')}")
    bucket = os.environ.get("BRFED_CATALOG_BUCKET", "brfed-backups")
    print(f"  catalog: s3://{bucket}/brfed/catalog/volumebackups/br/{name}.json")
    print(f"\n{DIM}Restore is not part of the demo yet: the federated restore workflow is still to be built.{RESET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
