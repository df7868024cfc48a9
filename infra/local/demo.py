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
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import yaml

REPO = Path(__file__).resolve().parents[2]
BOLD, DIM, GREEN, RED, RESET = ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m") if sys.stdout.isatty() else ("",) * 5


def follow(sfn, arn: str, started: float):
    """Prints every state the execution enters, as it enters it; returns the final description."""
    print(f"  execution {arn}\n")
    seen = 0
    while True:
        events, token = [], None
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
            if e["type"].endswith("StateEntered") and e["type"] != "ChoiceStateEntered":
                state = e["stateEnteredEventDetails"]["name"]
                if not state.endswith("?"):
                    print(f"  {DIM}{time.time() - started:6.1f}s{RESET}  {state}")
        seen = len(events)
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING":
            return d, time.time() - started
        time.sleep(0.3)


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
    # The execution name is {namespace}.{name} (docs/safety.md); short here, so never hashed.
    exec_name = f"{vbk['metadata'].get('namespace', 'default')}.{name}"
    arn = sfn.start_execution(stateMachineArn=arn_sm, name=exec_name, input=json.dumps(vbk))["executionArn"]
    d, took = follow(sfn, arn, started)
    if d["status"] != "SUCCEEDED":
        print(f"\n{RED}{d['status']}{RESET}: {d.get('error')}: {d.get('cause')}")
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
    return restore(sfn, ec2, s3, name, doc)


def restore(sfn, ec2, s3, backup: str, backup_doc: dict) -> int:
    """Restores the backup into new TidbClusters in recovery mode, one per data plane."""
    name = backup.replace("demo-", "restore-")
    # what an operator does first: TidbClusters of the same layout in recovery mode, one per data plane
    # (the simulated operator's seeder plays that part here)
    target_ns = name
    sim_bin = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/brfed/target")) / "debug/brfed-sim-operator"
    subprocess.run([str(sim_bin), "seed", "--namespace", target_ns, "--name", "basic", "--key", target_ns, "--stores", "3",
                    "--restore-target"], check=True, capture_output=True)
    vrt = {
        "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
        "metadata": {"name": name, "namespace": "br"},
        "spec": {"clusters": [
            {"k8sClusterName": b["k8sClusterName"], "tcName": "basic", "tcNamespace": target_ns,
             "azName": f"us-west-2{'abc'[i % 3]}"} for i, b in enumerate(backup_doc["status"]["backups"])],
            "template": {"warmup": "sync", "warmupStrategy": "hybrid"}},
        "fromBackup": {"namespace": "br", "name": backup},
    }
    print(f"\n{BOLD}Restore{RESET} of {backup} into {target_ns}/basic (TidbClusters in recovery mode) on the same data planes, sync warmup")
    started = time.time()
    arn = sfn.start_execution(stateMachineArn=os.environ["BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN"], name=name, input=json.dumps(vrt))["executionArn"]
    d, took = follow(sfn, arn, started)
    if d["status"] != "SUCCEEDED":
        print(f"\n{RED}{d['status']}{RESET}: {d.get('error')}: {d.get('cause')}")
        return 1
    st = json.loads(d["output"])["status"]
    print(f"\n{GREEN}{BOLD}{st['phase']}{RESET} in {took:.1f} s  restored to commitTs {st['commitTs']} (the backup's minimum)")
    print("  " + "  ".join(f"{s['stepName']} {s.get('timeTaken', '?')}" for s in st["steps"]))
    vols = 0
    for b in backup_doc["status"]["backups"]:
        bucket_, prefix = b["backupPath"][len("s3://"):].split("/", 1)
        meta = json.load(s3.get_object(Bucket=bucket_, Key=f"{prefix}/restoremeta")["Body"])
        ids = [v["restore_volume_id"] for store in meta["tikv"]["stores"] for v in store["volumes"]]
        found = ec2.describe_volumes(VolumeIds=ids)["Volumes"]
        vols += len(found)
        azs = sorted({v["AvailabilityZone"] for v in found})
        print(f"  {b['k8sClusterName']:<6} {len(found)} volumes restored from the backup's snapshots in {', '.join(azs)}")
    sim = os.environ.get("SIM_HTTP_ADDR", "127.0.0.1:18080")
    pd = json.load(urllib.request.urlopen(f"http://{sim}/pd/{target_ns}"))
    for run in pd["restoreData"]:
        print(f"  restore-data ran once, on {run['by']} (resolved ts {run['resolvedTs']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
