#!/usr/bin/env python3
"""brfed's local AWS: one process around moto's server.

What it adds to moto 5.2.5 (see the "AWS emulator" section of infra/local/README.md):

* moto's server, in-process, on 127.0.0.1:15000, with Step Functions ASL execution turned on,
  Lambda without Docker and no preloaded EC2 AMIs.
* Lambda Invoke forwarding: every Invoke that reaches moto (from a client, from the ASL
  interpreter, from the event pump) goes to the Lambda runtime-API host (`cargo lambda watch`)
  on 127.0.0.1:19000 by function name; a function error comes back as real Lambda does it
  (200 + X-Amz-Function-Error: Unhandled + {"errorType", "errorMessage"}).
* A function-instance pool ("spawn" mode, the default): the prebuilt function binaries are
  started by this process against the host's runtime API, lazily, one more instance whenever
  all are busy (up to BRFED_LAMBDA_MAX_CONCURRENCY per function), with the environment of the
  function's configuration; they are recycled when the binary, $WORLD/functions.env or the
  function configuration changes.
* The event pump: fires EventBridge schedule rules (rate/cron) and delivers Step Functions
  "Execution Status Change" events to matching rules' Lambda / state machine targets; moto
  stores rules but fires nothing. PutEvents to rules with Lambda / state machine targets is
  routed through the same delivery.
* Asynchronous invocation as Lambda does it, for rules' Lambda targets and Invoke with
  InvocationType=Event: a function error is retried (the function's event invoke config,
  MaximumRetryAttempts default 2, MaximumEventAgeInSeconds default 6 h), then an invocation
  record goes to its OnFailure destination (an SQS queue: moto's SQS, same endpoint); a target
  EventBridge cannot invoke at all is retried as its RetryPolicy says, then the event goes to its
  DeadLetterConfig queue. Waits between attempts: BRFED_ASYNC_RETRY_DELAYS (seconds, default
  "60,120" like Lambda; the last repeats) or PUT /_brfed/async-retry. Every attempt is a record
  of GET /_brfed/deliveries.
* A control endpoint under http://127.0.0.1:15000/_brfed/ (clock, fire a rule now, deliveries,
  EC2 faults and the EC2 call journal):
    GET  /_brfed/health | /_brfed/clock | /_brfed/schedules | /_brfed/functions
    POST /_brfed/clock/advance {"seconds": N};  POST /_brfed/rules/NAME/fire
    GET  /_brfed/deliveries?rule=NAME&since=SEQ   one record per attempt: attempt/maxAttempts,
         requestId (the same for every attempt of one event), retryInSeconds (another attempt
         follows), onFailure / deadLetter (where the event went after the last one)
    GET  /_brfed/async-retry -> {"delays": [...], "default": [...]};  PUT {"delays": [2, 4]};
         DELETE (back to BRFED_ASYNC_RETRY_DELAYS)
    PUT    /_brfed/faults/ec2/ACTION {"rate": 2.0, "burst": 2}  throttle EC2 ACTION (token bucket,
           full at every PUT): calls beyond it get EC2's 503 RequestLimitExceeded, moto never sees them
    DELETE /_brfed/faults/ec2/ACTION                            -> {"removed": bool}
    GET    /_brfed/faults/ec2      -> {"throttles": {ACTION: {rate, burst, tokens, allowed, throttled}}}
    GET    /_brfed/ec2-calls?action=ACTION&since=SEQ -> {"calls": [{seq, t (monotonic s), wall (epoch s),
           action, region, throttled, snapshotId (DeleteSnapshot), status (HTTP)}], "lastSeq": N}
    DELETE /_brfed/ec2-calls       -> {"cleared": n}; seq numbers keep counting
    GET    /_brfed/invocations?execution=ARN&function=NAME&since=SEQ -> {"invocations": [{seq,
           function, start (epoch s), durationMs, memoryMb, error, execution, state, rule}],
           "lastSeq": N}: every synchronous Lambda invocation (also $WORLD/logs/lambda-invocations.jsonl);
           execution/state for a state machine's Task, rule for an EventBridge delivery
    GET    /_brfed/billed-calls?since=SEQ -> {"calls": [{seq, wall (epoch s), service (s3 | events),
           kind (S3: tier1 PUT/COPY/POST/LIST, tier2 GET/HEAD, free DELETE; events: the action),
           dataPlane (made by the simulated operator)}], "lastSeq": N}
* StartExecution without a name gets a UUID name (moto would name it "None").
"""

from __future__ import annotations

import argparse
import base64
import calendar
import collections
import datetime as dt
import http.client
import io
import ipaddress
import itertools
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any, Callable

# --- environment that must be in place before moto is imported ----------------------------------
HOST = os.environ.get("BRFED_EMULATOR_HOST", "127.0.0.1")
PORT = int(os.environ.get("BRFED_EMULATOR_PORT", "15000"))
os.environ["MOTO_PORT"] = str(PORT)  # the ASL interpreter calls services at http://localhost:$MOTO_PORT
os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-west-2")
os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
for _proxy_var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
    os.environ.pop(_proxy_var, None)  # every call here is loopback
os.environ["NO_PROXY"] = "*"

import boto3  # noqa: E402
from botocore.config import Config as BotoConfig  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from moto.core.config import default_user_config  # noqa: E402

default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
default_user_config.setdefault("lambda", {})["use_docker"] = False
default_user_config.setdefault("batch", {})["use_docker"] = False

from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: E402
from moto.events.models import Rule, events_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: E402
from moto.stepfunctions.parser.asl.eval.environment import Environment  # noqa: E402
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped  # noqa: E402
from moto.stepfunctions.parser.models import (  # noqa: E402
    StepFunctionsParserBackend,
    stepfunctions_parser_backends,
)
from werkzeug.serving import make_server  # noqa: E402

LOG = logging.getLogger("brfed.emulator")

LAMBDA_HOST = os.environ.get("BRFED_LAMBDA_HOST", "127.0.0.1:19000")
LAMBDA_MODE = os.environ.get("BRFED_LAMBDA_MODE", "spawn")  # spawn | watch
MAX_CONCURRENCY = int(os.environ.get("BRFED_LAMBDA_MAX_CONCURRENCY", "4"))
PUMP_INTERVAL = float(os.environ.get("BRFED_PUMP_INTERVAL", "0.5"))
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORLD = os.environ.get("BRFED_WORLD_DIR") or os.path.join(REPO, ".world")
CACHE = os.environ.get("BRFED_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "brfed")
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR") or os.path.join(CACHE, "target")
PROFILE_DIR = os.environ.get("BRFED_LAMBDA_PROFILE_DIR", "debug")
BIN_DIR = os.environ.get("BRFED_LAMBDA_BIN_DIR") or os.path.join(TARGET_DIR, PROFILE_DIR)
FUNCTIONS_ENV = os.environ.get("BRFED_FUNCTIONS_ENV") or os.path.join(WORLD, "functions.env")
ENDPOINT = f"http://{HOST}:{PORT}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(tz=dt.timezone.utc)


def iso_z(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(account_id: str, region: str, source: str, detail_type: str, when: dt.datetime, resource: str, detail: dict) -> dict:
    """An EventBridge event as AWS delivers it: the envelope around `detail`."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account_id,
        "time": iso_z(when),
        "region": region,
        "resources": [resource],
        "detail": detail,
    }


def epoch_ms(t: dt.datetime | None) -> int | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


def function_name_of(ref: str) -> tuple[str, str | None]:
    """Name and qualifier of a FunctionName parameter: a name, `name:qualifier`, a partial ARN
    `123456789012:function:name[:q]` or a full ARN `arn:aws:lambda:R:A:function:name[:q]`."""
    parts = ref.split(":")
    if ref.startswith("arn:"):
        return parts[6], (parts[7] if len(parts) > 7 else None)
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2], (parts[3] if len(parts) > 3 else None)
    return parts[0], (parts[1] if len(parts) > 1 else None)


# =================================================================================================
# Function instances ("spawn" mode)
# =================================================================================================
class FunctionPool:
    """Starts prebuilt function binaries against the runtime-API host, on demand.

    One instance handles one invocation at a time (lambda_runtime's sequential loop), exactly
    like a Lambda execution environment; when every instance of a function is busy, one more is
    started, up to MAX_CONCURRENCY. Instances stay up (warm) until the emulator stops, or until
    their binary / environment changes (then they are replaced once the function is idle).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pools: dict[str, dict[str, Any]] = {}
        self.log_dir = os.path.join(WORLD, "logs", "lambda")
        self._env_file_cache: tuple[float, dict[str, str]] = (-1.0, {})

    def _functions_env(self) -> dict[str, str]:
        try:
            mtime = os.stat(FUNCTIONS_ENV).st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._env_file_cache[0] == mtime:
            return self._env_file_cache[1]
        env: dict[str, str] = {}
        with open(FUNCTIONS_ENV, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith("export "):
                    line = line[len("export "):]
                key, sep, value = line.partition("=")
                if not sep:
                    continue
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                env[key.strip()] = value
        self._env_file_cache = (mtime, env)
        return env

    def environment(self, name: str, fn: Any) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "TMPDIR", "TZ", "RUST_LOG", "RUST_BACKTRACE")
            or k.startswith("BRFED_")
            or k.startswith("SSL_CERT")
        }
        region = getattr(fn, "region", None) or os.environ["AWS_DEFAULT_REGION"]
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": f"http://{LAMBDA_HOST}/.rt/{name}",
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(getattr(fn, "memory_size", 128) or 128),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(getattr(fn, "timeout", 3) or 3),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{name}",
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_ENDPOINT_URL": ENDPOINT,
                "BRFED_BUCKET": os.environ.get("BRFED_BUCKET", "brfed-backups"),
            }
        )
        env.update(self._functions_env())
        env.update({k: str(v) for k, v in (getattr(fn, "environment_vars", None) or {}).items()})
        return env

    def binary(self, name: str) -> str:
        return os.path.join(BIN_DIR, name)

    def _spawn(self, name: str, env: dict[str, str]) -> subprocess.Popen:
        os.makedirs(self.log_dir, exist_ok=True)
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab", buffering=0)
        try:
            proc = subprocess.Popen(
                [self.binary(name)],
                env=env,
                cwd=WORLD if os.path.isdir(WORLD) else "/",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
        finally:
            log.close()
        LOG.info("started instance of %s (pid %d)", name, proc.pid)
        return proc

    @staticmethod
    def _stop(procs: list[subprocess.Popen]) -> None:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 3
        for p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def acquire(self, name: str, fn: Any) -> None:
        """Called before forwarding one invocation: makes sure an idle instance will take it."""
        binary = self.binary(name)
        try:
            st = os.stat(binary)
        except FileNotFoundError:
            raise FunctionNotBuilt(name, binary) from None
        env = self.environment(name, fn)
        signature = (st.st_mtime_ns, st.st_size, tuple(sorted(env.items())))
        to_stop: list[subprocess.Popen] = []
        with self.lock:
            pool = self.pools.setdefault(name, {"procs": [], "inflight": 0, "signature": None})
            alive = []
            for p in pool["procs"]:
                if p.poll() is None:
                    alive.append(p)
                else:
                    LOG.warning("instance of %s (pid %d) exited with %s", name, p.pid, p.returncode)
            pool["procs"] = alive
            if pool["signature"] != signature and pool["inflight"] == 0:
                if alive:
                    LOG.info("binary or environment of %s changed: replacing %d instance(s)", name, len(alive))
                to_stop, pool["procs"] = alive, []
                pool["signature"] = signature
            pool["inflight"] += 1
            wanted = min(pool["inflight"], MAX_CONCURRENCY)
            while len(pool["procs"]) < wanted:
                pool["procs"].append(self._spawn(name, env))
        if to_stop:
            self._stop(to_stop)

    def deaths(self, name: str) -> int:
        """How many times every instance of `name` had died (each drain counts one)."""
        with self.lock:
            return self.pools.get(name, {}).get("deaths", 0)

    def all_exited(self, name: str) -> bool:
        with self.lock:
            procs = self.pools.get(name, {}).get("procs", [])
            return bool(procs) and all(p.poll() is not None for p in procs)

    def drain(self, name: str) -> None:
        """Every instance of `name` died (typically at init: a missing variable, a bad config).

        The runtime-API host keeps queued invocations until some instance polls for them, so a
        later instance would replay them. Answer them all now with Runtime.ExitError, as Lambda
        fails invocations whose runtime exited."""
        with self.lock:
            pool = self.pools.get(name)
            if not pool or not pool["procs"] or any(p.poll() is None for p in pool["procs"]):
                return
            codes = sorted({p.returncode for p in pool["procs"]})
            pool["procs"] = []
            pool["deaths"] = pool.get("deaths", 0) + 1
            tail = ""
            try:
                with open(os.path.join(self.log_dir, f"{name}.log"), "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - 800))
                    tail = f.read().decode("utf-8", "replace").strip().splitlines()[-3:]
                    tail = " | ".join(tail)
            except OSError:
                pass
            body = _error_body("Runtime.ExitError", f"Runtime exited with error: exit status {codes}. {tail}")
            host, _, port = LAMBDA_HOST.rpartition(":")
            for _ in range(1000):
                conn = http.client.HTTPConnection(host, int(port), timeout=0.3)
                try:
                    conn.request("GET", f"/.rt/{name}/2018-06-01/runtime/invocation/next")
                    resp = conn.getresponse()
                    resp.read()
                    req_id = resp.getheader("lambda-runtime-aws-request-id")
                except OSError:  # nothing queued: the long poll timed out
                    break
                finally:
                    conn.close()
                if resp.status != 200 or not req_id:
                    break
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
                try:
                    conn.request("POST", f"/.rt/{name}/2018-06-01/runtime/invocation/{req_id}/error", body=body,
                                 headers={"Content-Type": "application/json",
                                          "Lambda-Runtime-Function-Error-Type": "Runtime.ExitError"})
                    conn.getresponse().read()
                finally:
                    conn.close()
                LOG.warning("%s: answered queued invocation %s with Runtime.ExitError", name, req_id)

    def release(self, name: str) -> None:
        with self.lock:
            pool = self.pools.get(name)
            if pool:
                pool["inflight"] = max(0, pool["inflight"] - 1)

    def stop_all(self) -> None:
        with self.lock:
            procs = [p for pool in self.pools.values() for p in pool["procs"]]
            self.pools.clear()
        self._stop(procs)

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {
                name: {
                    "instances": [p.pid for p in pool["procs"] if p.poll() is None],
                    "inflight": pool["inflight"],
                }
                for name, pool in self.pools.items()
            }


class FunctionNotBuilt(Exception):
    def __init__(self, name: str, path: str):
        super().__init__(f"function binary {path} does not exist: build it (cargo build -p {name})")


POOL = FunctionPool()


# =================================================================================================
# Lambda Invoke forwarding (patches moto's Docker-less Lambda backend)
# =================================================================================================
def _post_invocation(name: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    host, _, port = LAMBDA_HOST.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(
            "POST",
            f"/2015-03-31/functions/{name}/invocations",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


_CALLS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="invoke")


def forward_invoke(name: str, body: bytes, timeout: float, fn: Any) -> tuple[int, bytes]:
    """POSTs one invocation to the runtime-API host; returns (status, body) of its answer."""
    if LAMBDA_MODE != "spawn":
        return _post_invocation(name, body, timeout)
    POOL.acquire(name, fn)
    deaths = POOL.deaths(name)
    try:
        call = _CALLS.submit(_post_invocation, name, body, timeout)
        while True:
            # (not call.result(timeout=...): a socket timeout inside the call is also a TimeoutError)
            if futures_wait([call], timeout=0.25).done:
                return call.result()
            if POOL.all_exited(name):
                POOL.drain(name)  # answers the queued invocations with Runtime.ExitError
            if POOL.deaths(name) != deaths:  # (this or another invocation drained)
                if futures_wait([call], timeout=1.0).done:
                    return call.result()
                # Not queued, so taken by an instance that has died: Lambda fails such an
                # invocation at once with Runtime.ExitError (the runtime-API host would hold it
                # until the function timeout). Its call is left to end at that timeout.
                LOG.warning("%s: an instance died during an invocation: Runtime.ExitError", name)
                return 500, _error_body("Runtime.ExitError", f"RequestId: the runtime of {name} exited during the invocation")
    finally:
        POOL.release(name)


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def forwarded_lambda_invoke(
    self: LambdaSimpleBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: dict[str, str],
) -> bytes | None:
    name, arn_qualifier = function_name_of(function_name)
    fn = self.get_function(name, qualifier or arn_qualifier)  # ResourceNotFoundException like Lambda
    payload = body if isinstance(body, bytes) else (body or "").encode()
    if not payload:
        payload = b"{}"
    invocation_type = headers.get("X-Amz-Invocation-Type", "RequestResponse")
    timeout = float(getattr(fn, "timeout", None) or 3)
    response_headers["x-amz-executed-version"] = "$LATEST"
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":
        # Lambda's asynchronous invocation: retries and the OnFailure destination (see the pump)
        PUMP.invoke_async(self.account_id, self.region_name, name, payload)
        return b""
    wall, started = time.time(), time.monotonic()
    status, answer = _invoke(name, payload, timeout, fn)
    duration_ms = (time.monotonic() - started) * 1000
    LOG.info("invoke %s -> %s in %.0f ms", name, status, duration_ms)
    INVOCATIONS.record(name, fn, wall, duration_ms, status, answer, headers.get("X-Amz-Client-Context"))
    if status != 200:
        response_headers["x-amz-function-error"] = "Unhandled"
    return answer


class Invocations:
    """Journal of every synchronous Lambda invocation (what Lambda bills): function, start (epoch s),
    duration in ms as measured around the call (spawn of a new instance included, as Lambda bills
    a custom runtime's init), the configured memory, and the execution and state that made it
    (the ASL interpreter passes them in the ClientContext; see _attributed_lambda_integration) or
    the rule whose event it delivers. Kept in memory (last 100k) and appended to
    $WORLD/logs/lambda-invocations.jsonl."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: collections.deque = collections.deque(maxlen=100_000)
        self.seq = itertools.count(1)
        self.last_seq = 0
        self.path = os.path.join(WORLD, "logs", "lambda-invocations.jsonl")

    @staticmethod
    def _context(header: str | None) -> dict[str, Any]:
        if not header:
            return {}
        try:
            doc = json.loads(base64.b64decode(header))
            custom = doc.get("custom") if isinstance(doc, dict) else None
            return custom if isinstance(custom, dict) else {}
        except (ValueError, TypeError):
            return {}

    def record(self, name: str, fn: Any, wall: float, duration_ms: float, status: int, answer: bytes,
               client_context: str | None) -> None:
        ctx = self._context(client_context)
        error = None
        if status != 200:
            try:
                error = json.loads(answer or b"null").get("errorType")
            except (ValueError, AttributeError):
                error = "Unknown"
        with self.lock:
            self.last_seq = next(self.seq)
            entry = {
                "seq": self.last_seq, "function": name, "start": wall, "durationMs": round(duration_ms, 3),
                "memoryMb": getattr(fn, "memory_size", None), "error": error,
                "execution": ctx.get("brfedExecution"), "state": ctx.get("brfedState"),
                "rule": ctx.get("brfedRule"),
            }
            self.items.append(entry)
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
            except OSError:
                LOG.exception("could not append to %s", self.path)

    def journal(self, execution: str | None, function: str | None, since: int) -> dict[str, Any]:
        with self.lock:
            items = [dict(i) for i in self.items if i["seq"] > since
                     and (execution is None or i["execution"] == execution)
                     and (function is None or i["function"] == function)]
            return {"invocations": items, "lastSeq": self.last_seq}


INVOCATIONS = Invocations()


def client_context(**custom: str) -> str:
    """A Lambda ClientContext carrying `custom` (the emulator's own attribution; the function never
    sees it: the runtime-API host gets the payload only)."""
    return base64.b64encode(json.dumps({"custom": custom}).encode()).decode()


def _invoke(name: str, payload: bytes, timeout: float, fn: Any) -> tuple[int, bytes]:
    """Invokes and normalises the answer: (200, result) or (500, {"errorType","errorMessage"})."""
    try:
        status, answer = forward_invoke(name, payload, timeout, fn)
    except FunctionNotBuilt as e:
        return 500, _error_body("Runtime.InvalidEntrypoint", str(e))
    except TimeoutError:
        return 500, _error_body("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
    except OSError as e:
        return 500, _error_body(
            "Runtime.Unavailable", f"the Lambda runtime host at {LAMBDA_HOST} is not reachable: {e}"
        )
    if status == 200:
        return 200, answer
    if status == 500:
        # The function reported an error through the runtime API: the host relays its body.
        try:
            doc = json.loads(answer or b"null")
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "errorType" in doc:
            return 500, answer
        return 500, _error_body("Runtime.Unknown", (answer or b"").decode("utf-8", "replace"))
    if status in (408, 504):
        return 500, _error_body("Sandbox.Timedout", f"Task timed out (runtime host answered {status})")
    return 500, _error_body(
        "Runtime.Unknown", f"runtime host answered {status}: {(answer or b'').decode('utf-8', 'replace')[:500]}"
    )


LambdaSimpleBackend.invoke = forwarded_lambda_invoke  # type: ignore[method-assign]

# --- which execution made an invocation: the ASL interpreter's Lambda Task passes its execution
# ARN and state name in the ClientContext, which forwarded_lambda_invoke journals (INVOCATIONS)
_original_lambda_integration = lambda_eval_utils.execute_lambda_function_integration


def _attributed_lambda_integration(env, parameters, region, state_credentials):
    try:
        data = env.states.context_object.context_object_data
        if "ClientContext" not in parameters:
            parameters = dict(parameters)
            parameters["ClientContext"] = client_context(
                brfedExecution=str(data["Execution"]["Id"]), brfedState=str(data.get("State", {}).get("Name", "")))
    except (AttributeError, KeyError, TypeError):
        LOG.warning("Lambda Task: no execution context to attribute the invocation to")
    return _original_lambda_integration(env=env, parameters=parameters, region=region,
                                        state_credentials=state_credentials)


lambda_eval_utils.execute_lambda_function_integration = _attributed_lambda_integration


# --- StartExecution without a name: AWS generates a UUID; moto would name it "None" -------------
_original_start_execution = StepFunctionsParserBackend.start_execution


def _start_execution_with_default_name(self, state_machine_arn, name=None, execution_input=None, trace_header=None):
    return _original_start_execution(
        self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
    )


StepFunctionsParserBackend.start_execution = _start_execution_with_default_name  # type: ignore[method-assign]


# --- StopExecution is final: a stopped execution stays ABORTED ----------------------------------
# moto's interpreter goes on evaluating the state that was running when StopExecution came, and
# `Environment.set_error` replaces the program state unconditionally: an error raised on the way
# out of that state turns the stopped execution FAILED. In AWS a stopped execution is ABORTED, and
# brfed's abort rule depends on that status.
_original_set_error = Environment.set_error


def _set_error_unless_stopped(self, error):
    with self._state_mutex:
        if isinstance(self._program_state, ProgramStopped):
            return
    _original_set_error(self, error)


Environment.set_error = _set_error_unless_stopped  # type: ignore[method-assign]


# =================================================================================================
# EventBridge event patterns
# =================================================================================================
_MISSING = object()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _wildcard(pattern: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", re.S)


def _string_op(op: str, arg: Any, v: Any) -> bool:
    if not isinstance(v, str):
        return False
    if op in ("prefix", "suffix") and isinstance(arg, dict):
        arg = arg.get("equals-ignore-case")
        v, arg = v.lower(), str(arg).lower()
    if op == "prefix":
        return v.startswith(arg)
    if op == "suffix":
        return v.endswith(arg)
    if op == "equals-ignore-case":
        return v.lower() == str(arg).lower()
    if op == "wildcard":
        return bool(_wildcard(arg).match(v))
    raise ValueError(op)


def _numeric(arg: list, v: Any) -> bool:
    if not _is_number(v):
        return False
    ops = {"=": v.__eq__, "<": v.__lt__, "<=": v.__le__, ">": v.__gt__, ">=": v.__ge__}
    for i in range(0, len(arg) - 1, 2):
        if not ops[arg[i]](arg[i + 1]):
            return False
    return True


def _scalar_eq(cond: Any, v: Any) -> bool:
    if isinstance(cond, bool) or isinstance(v, bool):
        return isinstance(cond, bool) and isinstance(v, bool) and cond == v
    if _is_number(cond):
        return _is_number(v) and float(cond) == float(v)
    return cond == v  # strings and null


def _one(cond: Any, v: Any) -> bool:
    """One condition of a leaf list against one (present) event value."""
    if not isinstance(cond, dict):
        return _scalar_eq(cond, v)
    (op, arg), = cond.items()
    if op in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
        return _string_op(op, arg, v)
    if op == "numeric":
        return _numeric(arg, v)
    if op == "cidr":
        try:
            return isinstance(v, str) and ipaddress.ip_address(v) in ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return False
    if op == "anything-but":
        if isinstance(arg, list):
            return not any(_scalar_eq(a, v) for a in arg)
        if isinstance(arg, dict):
            (inner, inner_arg), = arg.items()
            args = inner_arg if isinstance(inner_arg, list) else [inner_arg]
            return isinstance(v, str) and not any(_string_op(inner, a, v) for a in args)
        return not _scalar_eq(arg, v)
    raise ValueError(f"unsupported event pattern operator {op!r}")


def _leaf(conds: list, value: Any) -> bool:
    for cond in conds:
        if isinstance(cond, dict) and "exists" in cond:
            present = value is not _MISSING and not isinstance(value, dict)
            if bool(cond["exists"]) == present:
                return True
            continue
        if value is _MISSING:
            continue
        values = value if isinstance(value, list) else [value]
        if any(_one(cond, v) for v in values):
            return True
    return False


def pattern_matches(pattern: dict, event: Any) -> bool:
    """EventBridge content filtering: exact values, lists (OR), prefix, suffix,
    equals-ignore-case, wildcard, anything-but, numeric, cidr, exists, nested keys, $or."""
    for key, cond in pattern.items():
        if key == "$or":
            if not any(pattern_matches(p, event) for p in cond):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(cond, dict):
            if value is _MISSING:
                value = {}
            if not isinstance(value, dict) or not pattern_matches(cond, value):
                return False
        elif isinstance(cond, list):
            if not _leaf(cond, value):
                return False
        else:
            raise ValueError(f"event pattern value for {key!r} must be an object or an array")
    return True


# =================================================================================================
# Schedule expressions
# =================================================================================================
_MONTHS = {m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}


def _aws_dow(d: dt.date) -> int:
    return (d.weekday() + 1) % 7 + 1  # 1 = Sunday ... 7 = Saturday


def _parse_set(field: str, lo: int, hi: int, names: dict[str, int] | None = None) -> set[int]:
    def num(s: str) -> int:
        s = s.upper()
        if names and s in names:
            return names[s]
        n = int(s)
        if not lo <= n <= hi:
            raise ValueError(f"{n} outside {lo}-{hi}")
        return n

    out: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_s = part.split("/", 1)
            step = int(step_s)
            if step < 1:
                raise ValueError("step must be >= 1")
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            a_s, b_s = part.split("-", 1)
            a, b = num(a_s), num(b_s)
        else:
            a = num(part)
            b = hi if step != 1 else a
        if a <= b:
            out.update(range(a, b + 1, step))
        else:  # wrap-around range such as FRI-MON
            out.update(x for i, x in enumerate(itertools.chain(range(a, hi + 1), range(lo, b + 1))) if i % step == 0)
    return out


class Cron:
    """EventBridge cron: minutes hours day-of-month month day-of-week year (UTC)."""

    def __init__(self, expr: str):
        fields = expr.split()
        if len(fields) != 6:
            raise ValueError(f"cron needs 6 fields, got {len(fields)}: {expr!r}")
        mi, ho, dom, mon, dow, yr = fields
        self.minutes = sorted(_parse_set(mi, 0, 59))
        self.hours = sorted(_parse_set(ho, 0, 23))
        self.months = _parse_set(mon, 1, 12, _MONTHS)
        self.years = None if yr == "*" else _parse_set(yr, 1970, 2199)
        if dom != "?" and dow != "?":
            raise ValueError("one of day-of-month and day-of-week must be '?'")
        self.dom = None if dom == "?" else self._day_of_month(dom)
        self.dow = None if dow == "?" else self._day_of_week(dow)

    @staticmethod
    def _day_of_month(field: str) -> Callable[[dt.date], bool]:
        tests: list[Callable[[dt.date], bool]] = []
        plain: list[str] = []
        for part in field.upper().split(","):
            if part == "L":
                tests.append(lambda d: d.day == calendar.monthrange(d.year, d.month)[1])
            elif part == "LW":
                def last_weekday(d: dt.date) -> bool:
                    last = dt.date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])
                    while last.weekday() >= 5:
                        last -= dt.timedelta(days=1)
                    return d == last
                tests.append(last_weekday)
            elif part.endswith("W"):
                n = int(part[:-1])

                def nearest_weekday(d: dt.date, n: int = n) -> bool:
                    days = calendar.monthrange(d.year, d.month)[1]
                    target = dt.date(d.year, d.month, min(n, days))
                    if target.weekday() == 5:  # Saturday -> Friday, or Monday if the 1st
                        target = target + dt.timedelta(days=2) if target.day == 1 else target - dt.timedelta(days=1)
                    elif target.weekday() == 6:  # Sunday -> Monday, or Friday if month end
                        target = target - dt.timedelta(days=2) if target.day == days else target + dt.timedelta(days=1)
                    return d == target
                tests.append(nearest_weekday)
            else:
                plain.append(part)
        if plain:
            days = _parse_set(",".join(plain), 1, 31)
            tests.append(lambda d: d.day in days)
        return lambda d: any(t(d) for t in tests)

    @staticmethod
    def _day_of_week(field: str) -> Callable[[dt.date], bool]:
        tests: list[Callable[[dt.date], bool]] = []
        plain: list[str] = []
        for part in field.upper().split(","):
            if "#" in part:
                day_s, nth_s = part.split("#", 1)
                day = _DAYS.get(day_s) or int(day_s)
                nth = int(nth_s)
                tests.append(lambda d, day=day, nth=nth: _aws_dow(d) == day and (d.day - 1) // 7 + 1 == nth)
            elif part.endswith("L"):
                day_s = part[:-1] or "7"
                day = _DAYS.get(day_s) or int(day_s)
                tests.append(
                    lambda d, day=day: _aws_dow(d) == day
                    and d.day + 7 > calendar.monthrange(d.year, d.month)[1]
                )
            else:
                plain.append(part)
        if plain:
            days = _parse_set(",".join(plain), 1, 7, _DAYS)
            tests.append(lambda d: _aws_dow(d) in days)
        return lambda d: any(t(d) for t in tests)

    def _day_ok(self, d: dt.date) -> bool:
        if d.month not in self.months or (self.years is not None and d.year not in self.years):
            return False
        if self.dom is not None and not self.dom(d):
            return False
        if self.dow is not None and not self.dow(d):
            return False
        return True

    def next_after(self, t: dt.datetime) -> dt.datetime | None:
        t = t.astimezone(dt.timezone.utc).replace(second=0, microsecond=0)
        day = t.date()
        for _ in range(366 * 5):
            if self._day_ok(day):
                for h in self.hours:
                    for m in self.minutes:
                        cand = dt.datetime(day.year, day.month, day.day, h, m, tzinfo=dt.timezone.utc)
                        if cand > t:
                            return cand
            day += dt.timedelta(days=1)
        return None


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")


class Schedule:
    def __init__(self, expr: str):
        self.expr = expr.strip()
        m = _RATE.match(self.expr)
        if m:
            n = int(m.group(1))
            if n < 1:
                raise ValueError("rate must be positive")
            unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
            self.period: dt.timedelta | None = dt.timedelta(seconds=n * unit)
            self.cron: Cron | None = None
            return
        m = _CRON.match(self.expr)
        if not m:
            raise ValueError(f"unsupported schedule expression {expr!r}")
        self.period = None
        self.cron = Cron(m.group(1))

    def next_after(self, t: dt.datetime) -> dt.datetime | None:
        if self.period is not None:
            return t + self.period
        assert self.cron is not None
        return self.cron.next_after(t)


# =================================================================================================
# Asynchronous invocation: retries, then the on-failure destination or the dead-letter queue
# =================================================================================================
# EventBridge invokes a Lambda target asynchronously. Lambda then runs the event up to
# 1 + MaximumRetryAttempts times (the function's event invoke config; 2 retries by default), about
# 1 min before the second attempt and 2 min before the third, while the event is younger than
# MaximumEventAgeInSeconds (6 h by default); once they are spent, it sends an invocation record to
# the OnFailure destination, if any. When EventBridge itself cannot invoke the target (no such
# function, ...), it retries as the target's RetryPolicy says (185 attempts, 24 h by default) and
# then sends the event to the target's DeadLetterConfig queue, if any. Here, the waits before the
# 2nd, 3rd, ... attempt are BRFED_ASYNC_RETRY_DELAYS (seconds, comma-separated, the last repeats;
# default "60,120" as Lambda), or what PUT /_brfed/async-retry set, so that tests take seconds.
DEFAULT_ASYNC_RETRY_DELAYS = "60,120"
LAMBDA_DEFAULT_RETRIES = 2
LAMBDA_DEFAULT_MAX_AGE = 21600
EVENTS_DEFAULT_RETRIES = 185
EVENTS_DEFAULT_MAX_AGE = 86400


def parse_delays(value: Any) -> list[float]:
    """`"60,120"` or `[60, 120]` -> [60.0, 120.0]; at least one, each finite and >= 0."""
    items = [p for p in value.replace(" ", "").split(",") if p] if isinstance(value, str) else list(value)
    delays = [float(d) for d in items]
    if not delays or any(not math.isfinite(d) or d < 0 for d in delays):
        raise ValueError(f"retry delays must be one or more seconds >= 0, got {value!r}")
    return delays


class AsyncRetryDelays:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.default = parse_delays(os.environ.get("BRFED_ASYNC_RETRY_DELAYS") or DEFAULT_ASYNC_RETRY_DELAYS)
        self.delays = list(self.default)

    def after(self, attempt: int) -> float:
        """Seconds between attempt `attempt` (1-based) and the next one."""
        with self.lock:
            return self.delays[min(attempt, len(self.delays)) - 1]

    def set(self, delays: Any) -> None:
        parsed = parse_delays(delays)
        with self.lock:
            self.delays = parsed

    def reset(self) -> None:
        with self.lock:
            self.delays = list(self.default)

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {"delays": list(self.delays), "default": list(self.default)}


ASYNC_RETRY = AsyncRetryDelays()


def _error_code(e: Exception) -> tuple[str, str]:
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return err.get("Code") or type(e).__name__, err.get("Message") or str(e)
    return type(e).__name__, str(e)


# =================================================================================================
# The event pump
# =================================================================================================
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class Pump:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.offset = dt.timedelta(0)  # virtual clock = real clock + offset (schedules only)
        self.schedules: dict[tuple, dict[str, Any]] = {}
        self.seen: dict[tuple, str] = {}
        self.deliveries: collections.deque = collections.deque(maxlen=2000)
        self.seq = itertools.count(1)
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="deliver")
        self.stop = threading.Event()
        cfg = BotoConfig(read_timeout=900, connect_timeout=5, retries={"max_attempts": 1})
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        self._clients: dict[tuple[str, str], Any] = {}
        self._client_lock = threading.Lock()
        self._session, self._cfg = session, cfg
        os.makedirs(os.path.join(WORLD, "logs"), exist_ok=True)
        self.journal = open(os.path.join(WORLD, "logs", "event-pump.jsonl"), "a", encoding="utf-8")

    def client(self, service: str, region: str) -> Any:
        with self._client_lock:
            c = self._clients.get((service, region))
            if c is None:
                c = self._session.client(service, region_name=region, endpoint_url=ENDPOINT, config=self._cfg)
                self._clients[(service, region)] = c
            return c

    def now(self) -> dt.datetime:
        return utc_now() + self.offset

    # --- loop --------------------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stop.wait(PUMP_INTERVAL):
            try:
                self.scan_executions()
                self.scan_schedules()
            except Exception:  # keep pumping whatever happens
                LOG.exception("event pump tick failed")

    # --- Step Functions execution status changes ----------------------------------------------------
    def scan_executions(self) -> None:
        for account_id, regions in list(stepfunctions_parser_backends.items()):
            for region, backend in list(regions.items()):
                for sm in list(backend.state_machines):
                    for ex in list(getattr(sm, "executions", [])):
                        status = getattr(ex.exec_status, "value", ex.exec_status)
                        if status is None:
                            continue
                        key = (ex.exec_arn, epoch_ms(ex.start_date))
                        prev = self.seen.get(key)
                        if prev == status:
                            continue
                        self.seen[key] = status
                        if prev is None and status != "RUNNING":
                            self.emit_status(account_id, region, ex, "RUNNING")
                        self.emit_status(account_id, region, ex, status)

    def emit_status(self, account_id: str, region: str, ex: Any, status: str) -> None:
        terminal = status in TERMINAL
        output = None
        if status == "SUCCEEDED":
            output = json.dumps(ex.output, separators=(",", ":"))
        raw_input = getattr(ex, "execution_input", None)
        if not isinstance(raw_input, str):
            raw_input = json.dumps(ex.input_data, separators=(",", ":"))
        event = envelope(
            account_id,
            region,
            "aws.states",
            "Step Functions Execution Status Change",
            utc_now(),
            ex.exec_arn,
            {
                "executionArn": ex.exec_arn,
                "stateMachineArn": ex.state_machine_arn,
                "name": ex.name,
                "status": status,
                "startDate": epoch_ms(ex.start_date),
                "stopDate": epoch_ms(ex.stop_date) if terminal else None,
                "input": raw_input,
                "output": output,
                "inputDetails": {"included": True},
                "outputDetails": {"included": True} if output is not None else None,
                "error": ex.error if terminal else None,
                "cause": ex.cause if terminal else None,
            },
        )
        self.put_event(account_id, region, "default", event)

    def put_event(self, account_id: str, region: str, bus_name: str, event: dict) -> int:
        """Delivers one event to every enabled pattern rule of the bus that matches it."""
        backend = events_backends[account_id][region]
        bus = backend.event_buses.get(bus_name)
        if bus is None:
            return 0
        matched = 0
        for rule in list(bus.rules.values()):
            raw = getattr(rule.event_pattern, "_raw_pattern", None)
            if rule.state != "ENABLED" or not raw:
                continue
            try:
                ok = pattern_matches(json.loads(raw), event)
            except Exception as e:
                LOG.warning("rule %s: bad event pattern %s: %s", rule.name, raw, e)
                continue
            if ok:
                matched += 1
                for target in list(rule.targets):
                    self.executor.submit(self.deliver, rule, target, event, "pattern")
        return matched

    # --- schedules -----------------------------------------------------------------------------------
    def scan_schedules(self) -> list[dict]:
        fired: list[dict] = []
        with self.lock:
            now = self.now()
            live = set()
            for account_id, regions in list(events_backends.items()):
                for region, backend in list(regions.items()):
                    for bus_name, bus in list(backend.event_buses.items()):
                        for rule in list(bus.rules.values()):
                            expr = rule.scheduled_expression
                            if not expr:
                                continue
                            key = (account_id, region, bus_name, rule.name)
                            live.add(key)
                            st = self.schedules.get(key)
                            if st is None or st["expr"] != expr:
                                try:
                                    sched = Schedule(expr)
                                except Exception as e:
                                    if st is None or st.get("error") != str(e):
                                        LOG.warning("rule %s: %s", rule.name, e)
                                    self.schedules[key] = {"expr": expr, "error": str(e), "next": None}
                                    continue
                                st = {"expr": expr, "sched": sched, "next": sched.next_after(now), "error": None}
                                self.schedules[key] = st
                            if st.get("error"):
                                continue
                            count = 0
                            while st["next"] is not None and st["next"] <= now and count < 1000:
                                due = st["next"]
                                st["next"] = st["sched"].next_after(due)
                                count += 1
                                if rule.state == "ENABLED":
                                    fired.extend(self.fire(account_id, region, rule, due, wait=False))
            for key in list(self.schedules):
                if key not in live:
                    del self.schedules[key]
        return fired

    def fire(self, account_id: str, region: str, rule: Any, when: dt.datetime, wait: bool) -> list[dict]:
        event = envelope(account_id, region, "aws.events", "Scheduled Event", when, rule.arn, {})
        futures = [self.executor.submit(self.deliver, rule, t, event, "schedule") for t in list(rule.targets)]
        if not wait:
            return [{"rule": rule.name, "time": event["time"], "targets": len(futures)}]
        return [f.result() for f in futures]

    # --- delivery ------------------------------------------------------------------------------------
    @staticmethod
    def _json_path(doc: Any, path: str) -> Any:
        if path in ("$", ""):
            return doc
        if not path.startswith("$."):
            raise ValueError(f"unsupported InputPath {path!r}")
        for part in path[2:].split("."):
            m = re.match(r"^([^\[]*)((?:\[\d+\])*)$", part)
            if not m:
                raise ValueError(f"unsupported InputPath {path!r}")
            if m.group(1):
                doc = doc[m.group(1)]
            for idx in re.findall(r"\[(\d+)\]", m.group(2)):
                doc = doc[int(idx)]
        return doc

    def target_input(self, target: dict, event: dict) -> str:
        if target.get("Input") is not None:
            return target["Input"]
        if target.get("InputPath"):
            return json.dumps(self._json_path(event, target["InputPath"]))
        transformer = target.get("InputTransformer")
        if transformer:
            values = {k: self._json_path(event, p) for k, p in (transformer.get("InputPathsMap") or {}).items()}
            out = transformer.get("InputTemplate", "")
            for k, v in values.items():
                out = out.replace(f'"<{k}>"', json.dumps(v) if isinstance(v, str) else json.dumps(json.dumps(v)))
                out = out.replace(f"<{k}>", v if isinstance(v, str) else json.dumps(v))
            return out
        return json.dumps(event)

    def deliver(self, rule: Any, target: dict, event: dict, kind: str) -> dict:
        """First attempt of one delivery; the journal gets one record per attempt (later ones are
        made by timers). Returns the first attempt's record."""
        arn = target.get("Arn", "")
        region = arn.split(":")[3] if arn.count(":") >= 5 else rule.region_name
        job = {"rule": rule, "target": target, "event": event, "kind": kind, "arn": arn, "region": region,
               "requestId": str(uuid.uuid4()), "first": time.monotonic(), "attempt": 1, "deliveryAttempt": 1,
               "config": None}
        return self._deliver(job)

    def invoke_async(self, account_id: str, region: str, function_name: str, payload: bytes) -> None:
        """Invoke with InvocationType=Event: the same retries and on-failure destination as a
        rule's Lambda target, journaled with kind "invoke"."""
        arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        job = {"rule": None, "target": {"Id": None, "Arn": arn, "Input": payload.decode("utf-8", "replace")},
               "event": {}, "kind": "invoke", "arn": arn, "region": region, "requestId": str(uuid.uuid4()),
               "first": time.monotonic(), "attempt": 1, "deliveryAttempt": 1, "config": None}
        self.executor.submit(self._deliver, job)

    def _later(self, delay: float, job: dict) -> None:
        timer = threading.Timer(delay, lambda: self.executor.submit(self._deliver, job))
        timer.daemon = True
        timer.start()

    def invoke_config(self, region: str, arn: str) -> dict[str, Any]:
        """The function's event invoke config (moto stores it; Lambda's defaults when there is none)."""
        try:
            c = self.client("lambda", region).get_function_event_invoke_config(FunctionName=function_name_of(arn)[0])
        except ClientError as e:
            if _error_code(e)[0] != "ResourceNotFoundException":
                raise
            c = {}
        on_failure = ((c.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        retries = c.get("MaximumRetryAttempts")
        age = c.get("MaximumEventAgeInSeconds")
        return {"maxRetries": LAMBDA_DEFAULT_RETRIES if retries is None else int(retries),
                "maxAge": LAMBDA_DEFAULT_MAX_AGE if age is None else int(age),
                "onFailure": on_failure or None}

    def send_to_queue(self, queue_arn: str, body: str, attributes: dict[str, str] | None = None) -> dict[str, Any]:
        """SendMessage to the SQS queue of `queue_arn` (moto's SQS, same process)."""
        parts = queue_arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise ValueError(f"only SQS queues are supported as destinations here, not {queue_arn!r}")
        sqs = self.client("sqs", parts[3])
        url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        return {"queue": queue_arn, "messageId": sqs.send_message(**kwargs)["MessageId"]}

    def _deliver(self, job: dict) -> dict:
        rule, target, event, kind, arn, region = (job[k] for k in ("rule", "target", "event", "kind", "arn", "region"))
        record: dict[str, Any] = {
            "seq": next(self.seq),
            "at": iso_z(utc_now()),
            "kind": kind,
            "rule": rule.name if rule is not None else None,
            "target": target.get("Id"),
            "arn": arn,
            "event": {"id": event.get("id"), "detail-type": event.get("detail-type"), "time": event.get("time")},
            "requestId": job["requestId"],
        }
        if kind == "pattern":
            record["event"]["detail"] = event.get("detail")
        if job["deliveryAttempt"] > 1:
            record["deliveryAttempt"] = job["deliveryAttempt"]
        is_lambda = ":lambda:" in arn and ":function:" in arn
        is_states = ":states:" in arn and ":stateMachine:" in arn
        try:
            payload = self.target_input(target, event)
            if is_lambda:
                if job["config"] is None:
                    job["config"] = self.invoke_config(region, arn)
                record["attempt"] = job["attempt"]
                record["maxAttempts"] = 1 + job["config"]["maxRetries"]
                r = self.client("lambda", region).invoke(
                    FunctionName=arn, Payload=payload.encode(),
                    ClientContext=client_context(brfedRule=record["rule"] or ""))
                body = r["Payload"].read().decode("utf-8", "replace")
                record["result"] = {"statusCode": r["StatusCode"], "functionError": r.get("FunctionError")}
                try:
                    record["result"]["payload"] = json.loads(body)
                except ValueError:
                    record["result"]["payload"] = body
                record["ok"] = r.get("FunctionError") is None
                if not record["ok"]:
                    self._after_function_error(job, record, payload)
            elif is_states:
                r = self.client("stepfunctions", region).start_execution(
                    stateMachineArn=arn, name=str(uuid.uuid4()), input=payload
                )
                record["result"] = {"executionArn": r["executionArn"]}
                record["ok"] = True
            else:
                record["ok"] = False
                record["result"] = {"skipped": "the pump delivers to Lambda functions and state machines only"}
        except Exception as e:
            record["ok"] = False
            record["result"] = {"error": f"{type(e).__name__}: {e}"}
            if is_lambda or is_states:
                self._after_delivery_error(job, record, e)
        LOG.info("delivered %s event of rule %s to %s (attempt %s): ok=%s", kind, record["rule"], arn,
                 record.get("attempt", job["deliveryAttempt"]), record["ok"])
        with self.lock:
            self.deliveries.append(record)
            self.journal.write(json.dumps(record, default=str) + "\n")
            self.journal.flush()
        return record

    def _after_function_error(self, job: dict, record: dict, payload: str) -> None:
        """Lambda's asynchronous retries, then the invocation record to the OnFailure destination."""
        cfg, attempt = job["config"], job["attempt"]
        condition = "RetriesExhausted"
        if attempt <= cfg["maxRetries"]:
            delay = ASYNC_RETRY.after(attempt)
            if time.monotonic() - job["first"] + delay <= cfg["maxAge"]:
                record["retryInSeconds"] = delay
                self._later(delay, dict(job, attempt=attempt + 1))
                return
            condition = "EventAgeExceeded"
        destination = cfg["onFailure"]
        if not destination:
            record["onFailure"] = {"condition": condition, "dropped": "the function has no OnFailure destination"}
            return
        try:
            request_payload: Any = json.loads(payload)
        except ValueError:
            request_payload = payload
        invocation = {
            "version": "1.0",
            "timestamp": utc_now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "requestContext": {"requestId": job["requestId"], "functionArn": f"{job['arn']}:$LATEST",
                               "condition": condition, "approximateInvokeCount": attempt},
            "requestPayload": request_payload,
            "responseContext": {"statusCode": record["result"]["statusCode"], "executedVersion": "$LATEST",
                                "functionError": record["result"]["functionError"]},
            "responsePayload": record["result"]["payload"],
        }
        try:
            record["onFailure"] = {"condition": condition, **self.send_to_queue(destination, json.dumps(invocation))}
        except Exception as e:
            LOG.error("async invocation of %s: sending to %s failed: %s", job["arn"], destination, e)
            record["onFailure"] = {"condition": condition, "destination": destination, "error": f"{type(e).__name__}: {e}"}

    def _after_delivery_error(self, job: dict, record: dict, error: Exception) -> None:
        """EventBridge could not invoke the target: its RetryPolicy, then its DeadLetterConfig."""
        target, n = job["target"], job["deliveryAttempt"]
        policy = target.get("RetryPolicy") or {}
        retries = policy.get("MaximumRetryAttempts", EVENTS_DEFAULT_RETRIES)
        max_age = policy.get("MaximumEventAgeInSeconds", EVENTS_DEFAULT_MAX_AGE)
        if job["kind"] != "invoke" and n <= retries:
            delay = ASYNC_RETRY.after(n)
            if time.monotonic() - job["first"] + delay <= max_age:
                record["retryInSeconds"] = delay
                self._later(delay, dict(job, deliveryAttempt=n + 1, attempt=1, config=None))
                return
        queue = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not queue or job["rule"] is None:
            record["deadLetter"] = {"dropped": "the target has no DeadLetterConfig"}
            return
        code, message = _error_code(error)
        attributes = {"RULE_ARN": job["rule"].arn, "TARGET_ARN": job["arn"], "ERROR_CODE": code,
                      "ERROR_MESSAGE": message[:256]}
        try:
            record["deadLetter"] = self.send_to_queue(queue, json.dumps(job["event"]), attributes)
        except Exception as e:
            LOG.error("rule %s: sending to the dead-letter queue %s failed: %s", job["rule"].name, queue, e)
            record["deadLetter"] = {"queue": queue, "error": f"{type(e).__name__}: {e}"}

PUMP = Pump()

# --- PutEvents: deliver to Lambda / state machine targets (moto only knows logs, SQS, buses...) ---
_original_send_to_targets = Rule.send_to_targets


def _is_pump_target(target: dict) -> bool:
    arn = target.get("Arn", "")
    return (":lambda:" in arn and ":function:" in arn) or (":states:" in arn and ":stateMachine:" in arn)


def _send_to_targets(self: Rule, original_event: dict, transform_input: bool = True) -> None:
    raw = getattr(self.event_pattern, "_raw_pattern", None)
    if not raw:
        return  # schedule rules do not receive events
    event = dict(original_event)
    event.pop("ingestion-time", None)
    if _is_number(event.get("time")):
        event["time"] = iso_z(dt.datetime.fromtimestamp(event["time"], tz=dt.timezone.utc))
    if not pattern_matches(json.loads(raw), event):
        return
    ours = [t for t in self.targets if _is_pump_target(t)]
    for target in ours:
        PUMP.executor.submit(PUMP.deliver, self, target, event, "pattern")
    others = [t for t in self.targets if not _is_pump_target(t)]
    if others:
        saved = self.targets
        self.targets = others
        try:
            _original_send_to_targets(self, original_event, transform_input)
        finally:
            self.targets = saved


Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign]


# =================================================================================================
# EC2 fault injection: per-action throttling (token bucket) and a journal of EC2 calls
# =================================================================================================
# EC2's own answer to "too many requests": HTTP 503 + code RequestLimitExceeded in EC2's error
# document. Both SDKs key on the code: botocore's legacy retry table matches it only together with
# status 503, its standard mode and the Rust SDK (aws-runtime THROTTLING_ERRORS) on the code alone.
_EC2_THROTTLED_XML = (
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
    "<Message>Request limit exceeded.</Message></Error></Errors>"
    "<RequestID>{request_id}</RequestID></Response>"
)
_EC2_ACTION = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


class TokenBucket:
    """`rate` requests/second on average, at most `burst` at once; starts full."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()
        self.allowed = self.throttled = 0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.allowed += 1
            return True
        self.throttled += 1
        return False

    def describe(self) -> dict[str, Any]:
        return {"rate": self.rate, "burst": self.burst, "tokens": round(self.tokens, 3),
                "allowed": self.allowed, "throttled": self.throttled}


def _signing_scope(environ: dict) -> tuple[str, str] | None:
    """(service, region) of a SigV4 request: the credential scope `AKID/date/region/service/aws4_request`
    of the Authorization header (what moto itself routes by), or of a presigned URL's X-Amz-Credential."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = re.search(r"Credential=([^,\s]+)", auth)
    if m is None:
        qs = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        cred = (qs.get("X-Amz-Credential") or [None])[0]
    else:
        cred = m.group(1)
    parts = (cred or "").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return None
    return parts[3].lower(), parts[2]


def _query_params(environ: dict) -> dict[str, str]:
    """The Query API parameters (`Action=...&...`) of a GET query string or a form-encoded POST body.

    Reading the body consumes wsgi.input, so it is put back as a BytesIO with a matching
    CONTENT_LENGTH for moto (chunked uploads become a plain body of known length)."""
    params = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if "Action" in params or environ.get("REQUEST_METHOD") != "POST":
        return params
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return params
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        raw = environ["wsgi.input"].read(length)
    elif environ.get("wsgi.input_terminated"):
        raw = environ["wsgi.input"].read()
    else:
        return params
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    params.update(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return params


class Ec2Faults:
    """Throttles configured EC2 actions and journals every EC2 Query API call, before moto sees it.

    Throttles are per action for the whole emulator (real EC2 buckets per account and region; tests
    here use one of each). The journal keeps the last 100k calls, throttled ones included, so a test
    can check both what the client attempted and what got through."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.throttles: dict[str, TokenBucket] = {}
        self.calls: collections.deque = collections.deque(maxlen=100_000)
        self.seq = itertools.count(1)
        self.last_seq = 0

    def set_throttle(self, action: str, body: dict) -> dict[str, Any]:
        if not _EC2_ACTION.match(action):
            raise ValueError(f"not an EC2 action name: {action!r}")
        if "rate" not in body:
            raise ValueError('body must be {"rate": requests per second, "burst": N}')
        rate = float(body["rate"])
        burst = float(body.get("burst", max(1.0, rate)))
        if not (math.isfinite(rate) and math.isfinite(burst)) or rate < 0 or burst < 0:
            raise ValueError("rate and burst must be finite and >= 0")
        with self.lock:
            self.throttles[action] = TokenBucket(rate, burst)  # a new PUT starts with a full bucket
            return {action: self.throttles[action].describe()}

    def remove_throttle(self, action: str) -> bool:
        with self.lock:
            return self.throttles.pop(action, None) is not None

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {"throttles": {a: b.describe() for a, b in self.throttles.items()}}

    def journal(self, action: str | None, since: int) -> dict[str, Any]:
        with self.lock:
            calls = [dict(c) for c in self.calls if c["seq"] > since and (action is None or c["action"] == action)]
            return {"calls": calls, "lastSeq": self.last_seq}

    def clear_journal(self) -> int:
        with self.lock:
            n = len(self.calls)
            self.calls.clear()  # seq keeps counting: a `since` taken before stays meaningful
            return n

    def admit(self, environ: dict) -> tuple[dict[str, Any] | None, bool]:
        """(journal entry, throttled) for an EC2 Query API request; (None, False) for anything else."""
        scope = _signing_scope(environ)
        if scope is None or scope[0] != "ec2":
            return None, False
        params = _query_params(environ)
        action = params.get("Action")
        if not action:
            return None, False
        now = time.monotonic()
        with self.lock:
            bucket = self.throttles.get(action)
            throttled = bucket is not None and not bucket.take(now)
            self.last_seq = next(self.seq)
            entry: dict[str, Any] = {
                "seq": self.last_seq, "t": now, "wall": time.time(), "action": action,
                "region": scope[1], "throttled": throttled,
                "snapshotId": params.get("SnapshotId") if action == "DeleteSnapshot" else None,
                "status": 503 if throttled else None,
            }
            self.calls.append(entry)
        return entry, throttled

    def record_status(self, entry: dict[str, Any], status: str) -> None:
        with self.lock:
            entry["status"] = int(status.split(" ", 1)[0])


EC2_FAULTS = Ec2Faults()


class BilledCalls:
    """Journal of the S3 and EventBridge requests the world makes, by how AWS bills them: S3
    `tier1` (PUT, COPY, POST, LIST), `tier2` (GET, HEAD, the rest of the reads) or `free` (DELETE);
    EventBridge `PutEvents` (entries) or another action; `dataPlane` when the simulated operator
    made it (its SDK's user agent names the app brfed-sim-operator). Last 100k, in memory."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: collections.deque = collections.deque(maxlen=100_000)
        self.seq = itertools.count(1)
        self.last_seq = 0

    @staticmethod
    def kind(service: str, environ: dict) -> tuple[str, int] | None:
        method = environ.get("REQUEST_METHOD", "GET")
        if service == "s3":
            query = environ.get("QUERY_STRING", "")
            if method == "DELETE":
                return "free", 1
            if method in ("PUT", "POST") or (method == "GET" and re.search(r"(^|&)(list-type|prefix)=", query)):
                return "tier1", 1
            return "tier2", 1
        if service == "events":
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            return (target.rsplit(".", 1)[-1] or "unknown"), 1
        return None

    def admit(self, environ: dict) -> None:
        scope = _signing_scope(environ)
        if scope is None or scope[0] not in ("s3", "events"):
            return
        kind = self.kind(scope[0], environ)
        if kind is None:
            return
        agent = environ.get("HTTP_USER_AGENT", "") + " " + environ.get("HTTP_X_AMZ_USER_AGENT", "")
        with self.lock:
            self.last_seq = next(self.seq)
            self.calls.append({"seq": self.last_seq, "wall": time.time(), "service": scope[0], "kind": kind[0],
                               "dataPlane": "app/brfed-sim-operator" in agent})

    def journal(self, since: int) -> dict[str, Any]:
        with self.lock:
            return {"calls": [dict(c) for c in self.calls if c["seq"] > since], "lastSeq": self.last_seq}


BILLED_CALLS = BilledCalls()


def ec2_throttled(start_response: Any) -> list[bytes]:
    request_id = str(uuid.uuid4())
    out = _EC2_THROTTLED_XML.format(request_id=request_id).encode()
    start_response("503 Service Unavailable", [
        ("Content-Type", "text/xml;charset=UTF-8"),
        ("Content-Length", str(len(out))),
        ("x-amzn-RequestId", request_id),  # where the Rust SDK looks for the request id
    ])
    return [out]


# =================================================================================================
# Control endpoint: /_brfed/...
# =================================================================================================
def _find_rule(name: str, bus: str = "default", account: str | None = None, region: str | None = None):
    account = account or "123456789012"
    region = region or os.environ["AWS_DEFAULT_REGION"]
    backend = events_backends[account][region]
    b = backend.event_buses.get(bus)
    rule = b.rules.get(name) if b else None
    return account, region, rule


def control(environ: dict, start_response: Any) -> list[bytes]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    status, doc = "404 Not Found", {"error": f"no route {method} {path}"}
    try:
        if path == "/_brfed/health":
            status, doc = "200 OK", {"ok": True, "lambdaMode": LAMBDA_MODE, "lambdaHost": LAMBDA_HOST,
                                     "clock": iso_z(PUMP.now()), "offsetSeconds": PUMP.offset.total_seconds()}
        elif path == "/_brfed/clock" and method == "GET":
            status, doc = "200 OK", {"now": iso_z(PUMP.now()), "offsetSeconds": PUMP.offset.total_seconds()}
        elif path == "/_brfed/clock/advance" and method == "POST":
            seconds = float(body.get("seconds", query.get("seconds", 0)))
            if seconds < 0:
                raise ValueError("the clock only moves forward")
            with PUMP.lock:
                PUMP.offset += dt.timedelta(seconds=seconds)
                fired = PUMP.scan_schedules()
            status, doc = "200 OK", {"now": iso_z(PUMP.now()), "offsetSeconds": PUMP.offset.total_seconds(), "fired": fired}
        elif path == "/_brfed/schedules" and method == "GET":
            with PUMP.lock:
                doc = {"now": iso_z(PUMP.now()), "schedules": [
                    {"account": k[0], "region": k[1], "bus": k[2], "rule": k[3], "expression": v["expr"],
                     "next": iso_z(v["next"]) if v.get("next") else None, "error": v.get("error")}
                    for k, v in PUMP.schedules.items()]}
            status = "200 OK"
        elif path.startswith("/_brfed/rules/") and path.endswith("/fire") and method == "POST":
            name = path[len("/_brfed/rules/"):-len("/fire")]
            account, region, rule = _find_rule(name, body.get("bus", "default"), body.get("account"), body.get("region"))
            if rule is None:
                status, doc = "404 Not Found", {"error": f"no rule {name}"}
            elif not rule.scheduled_expression:
                status, doc = "400 Bad Request", {"error": f"rule {name} has no ScheduleExpression"}
            else:
                results = PUMP.fire(account, region, rule, PUMP.now(), wait=True)
                status, doc = "200 OK", {"rule": name, "deliveries": results}
        elif path == "/_brfed/deliveries" and method == "GET":
            since = int(query.get("since", 0))
            rule = query.get("rule")
            with PUMP.lock:
                items = [d for d in PUMP.deliveries if d["seq"] > since and (rule is None or d["rule"] == rule)]
            status, doc = "200 OK", {"deliveries": items}
        elif path == "/_brfed/async-retry" and method == "GET":
            status, doc = "200 OK", ASYNC_RETRY.describe()
        elif path == "/_brfed/async-retry" and method == "PUT":
            if "delays" not in body:
                raise ValueError('PUT /_brfed/async-retry takes {"delays": [seconds, ...]}')
            ASYNC_RETRY.set(body["delays"])
            status, doc = "200 OK", ASYNC_RETRY.describe()
        elif path == "/_brfed/async-retry" and method == "DELETE":
            ASYNC_RETRY.reset()
            status, doc = "200 OK", ASYNC_RETRY.describe()
        elif path == "/_brfed/functions" and method == "GET":
            status, doc = "200 OK", {"mode": LAMBDA_MODE, "binDir": BIN_DIR, "maxConcurrency": MAX_CONCURRENCY,
                                     "functions": POOL.status()}
        elif path == "/_brfed/faults/ec2" and method == "GET":
            status, doc = "200 OK", EC2_FAULTS.describe()
        elif path.startswith("/_brfed/faults/ec2/") and method == "PUT":
            status, doc = "200 OK", EC2_FAULTS.set_throttle(path[len("/_brfed/faults/ec2/"):], body)
        elif path.startswith("/_brfed/faults/ec2/") and method == "DELETE":
            status, doc = "200 OK", {"removed": EC2_FAULTS.remove_throttle(path[len("/_brfed/faults/ec2/"):])}
        elif path == "/_brfed/ec2-calls" and method == "GET":
            status, doc = "200 OK", EC2_FAULTS.journal(query.get("action"), int(query.get("since", 0)))
        elif path == "/_brfed/invocations" and method == "GET":
            execution, function = (urllib.parse.unquote(query[k]) if query.get(k) else None
                                   for k in ("execution", "function"))
            status, doc = "200 OK", INVOCATIONS.journal(execution, function, int(query.get("since", 0)))
        elif path == "/_brfed/billed-calls" and method == "GET":
            status, doc = "200 OK", BILLED_CALLS.journal(int(query.get("since", 0)))
        elif path == "/_brfed/ec2-calls" and method == "DELETE":
            status, doc = "200 OK", {"cleared": EC2_FAULTS.clear_journal()}
    except Exception as e:
        status, doc = "400 Bad Request", {"error": f"{type(e).__name__}: {e}"}
    out = json.dumps(doc, default=str).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


class App:
    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/_brfed/"):
            return control(environ, start_response)
        try:
            BILLED_CALLS.admit(environ)
        except Exception:  # a journal bug must not take S3 or EventBridge down
            LOG.exception("billed-call journal failed")
        try:
            entry, throttled = EC2_FAULTS.admit(environ)
        except Exception:  # a fault-injection bug must not take EC2 down: let moto answer
            LOG.exception("EC2 fault injection failed; passing the request to moto")
            entry, throttled = None, False
        if entry is None:
            return self.moto(environ, start_response)
        if throttled:
            return ec2_throttled(start_response)

        def recording_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            EC2_FAULTS.record_status(entry, status)
            return start_response(status, headers, exc_info)

        return self.moto(environ, recording_start_response)


# =================================================================================================
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default=os.environ.get("BRFED_EMULATOR_LOG_LEVEL", "INFO"))
    args = parser.parse_args()
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if os.environ.get("BRFED_EMULATOR_ACCESS_LOG", "0") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = make_server(HOST, PORT, App(), threaded=True, request_handler=MotoRequestHandler)
    pump_thread = threading.Thread(target=PUMP.run, name="event-pump", daemon=True)
    pump_thread.start()

    def shutdown(signum: int, _frame: Any) -> None:
        # Everything lives in memory: stop the function instances and leave at once (a graceful
        # werkzeug shutdown plus the executors' exit joins took over 2 s).
        LOG.info("signal %d: stopping function instances and exiting", signum)
        PUMP.stop.set()
        POOL.stop_all()
        with PUMP.lock:
            PUMP.journal.flush()
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    LOG.info("moto %s on %s (lambda mode %s, runtime host %s, binaries %s)",
             __import__("moto").__version__, ENDPOINT, LAMBDA_MODE, LAMBDA_HOST, BIN_DIR)
    try:
        server.serve_forever()
    finally:
        PUMP.stop.set()
        POOL.stop_all()
        LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
