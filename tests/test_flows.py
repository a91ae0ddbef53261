"""The Prefect flow: under the test harness against a plain pipeline run, and deployed on a real local server
with a process worker, as docs/OPERATIONS.md tells an operator to do it."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # flows/ is not an installed package
    sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.prefect
# a fixed salt: the flow's and the plain run's folders must key users alike for their outputs to be equal
HASHING = '[embedding]\nbackend = "hashing"\n[privacy]\nuser_salt = "flow-test-salt"\n'


@pytest.fixture(scope="module")
def hashing_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "hashing.toml"
    path.write_text(HASHING)
    return path


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """A temporary Prefect API and database, with results (the ingest cache) under a temporary home."""
    from prefect.settings import PREFECT_HOME, PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings(updates={PREFECT_HOME: str(home), PREFECT_LOCAL_STORAGE_PATH: str(home / "storage")}):
        with prefect_test_harness(server_startup_timeout=180):
            yield


def _flow_run(state) -> tuple[str, dict]:
    assert state.is_completed(), state
    return str(state.state_details.flow_run_id), state.result()


def _task_states(flow_run_id: str) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r.state.name for r in runs}


def _log_messages(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs go to the API in the background
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def test_flow_matches_plain_run_and_publishes_artifacts(harness, sample_logs, hashing_config, tmp_path):
    from flows.selflearn_flow import selflearn_daily
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from selflearn import pipeline
    from selflearn.config import load_config

    flow_out, plain_out = tmp_path / "flow", tmp_path / "plain"
    flow_run_id, summary = _flow_run(selflearn_daily(str(sample_logs), str(flow_out), config_path=str(hashing_config),
                                                     return_state=True))
    for rel in ("training/parquet/train.parquet", "rephrases/pairs.parquet", "graph/nodes.parquet",
                "graph/edges.parquet", "manifest.json", "catalog.duckdb", "report.html"):
        assert (flow_out / rel).is_file(), rel
    assert list((flow_out / "training" / "massive" / "train").glob("*.jsonl"))
    assert set(_task_states(flow_run_id)) == set(pipeline.STAGES)
    messages = _log_messages(flow_run_id)
    for name in pipeline.STAGES[1:]:  # every stage logs through the run logger (ingest logs its totals)
        assert f"{name} done in" in "\n".join(messages), name
    assert any(m.startswith("ingest: ") for m in messages)

    plain = pipeline.run(str(sample_logs), plain_out, load_config(hashing_config, {"run.progress": False}),
                         say=lambda m: None)
    assert summary["counts"]["weak_labels"] == len(plain.labels) > 0
    assert pq.read_table(flow_out / "training/parquet/train.parquet").equals(
        pq.read_table(plain_out / "training/parquet/train.parquet"))

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    by_key = {a.key: a for a in artifacts}
    assert {"selflearn-run", "selflearn-funnel"} <= set(by_key)
    assert by_key["selflearn-run"].type == "markdown" and "### Funnel" in by_key["selflearn-run"].data
    assert f"| weak labels | {len(plain.labels):,} |" in by_key["selflearn-run"].data
    funnel = by_key["selflearn-funnel"].data
    funnel = json.loads(funnel) if isinstance(funnel, str) else funnel
    assert sum(row["labels"] for row in funnel) == len(plain.labels)


def test_a_stage_that_fails_once_is_retried_and_the_flow_recovers(harness, sample_logs, hashing_config, tmp_path,
                                                                  monkeypatch):
    """The graph stage raises once (as a file system hiccup would); its task retries and the run completes."""
    from dataclasses import replace

    import flows.selflearn_flow as daily
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from selflearn import pipeline

    assert all(t.retries >= 1 and t.timeout_seconds for t in [daily.ingest, *daily.STAGE_TASKS.values()])
    attempts = []
    graph_at = pipeline.STAGES.index("graph")
    graph = pipeline.STAGE_LIST[graph_at]

    def graph_failing_once(ctx, **datasets):
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise OSError("injected fault: the output volume went away for a moment")
        return graph.run(ctx, **datasets)

    stages = list(pipeline.STAGE_LIST)
    stages[graph_at] = replace(graph, run=graph_failing_once)
    monkeypatch.setattr(pipeline, "STAGE_LIST", tuple(stages))
    # the production backoff waits 10 s and more; the behaviour under test is the retry, not the wait
    monkeypatch.setitem(daily.STAGE_TASKS, "graph", daily.STAGE_TASKS["graph"].with_options(retry_delay_seconds=0))
    flow_run_id, summary = _flow_run(daily.selflearn_daily(str(sample_logs), str(tmp_path / "out"),
                                                           config_path=str(hashing_config), return_state=True))
    assert attempts == [1, 2]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    graph_run = next(r for r in runs if r.name.rsplit("-", 1)[0] == "graph")
    assert graph_run.run_count == 2 and graph_run.state.name == "Completed"
    assert summary["counts"]["weak_labels"] > 0 and (tmp_path / "out" / "training" / "parquet" / "train.parquet").is_file()


def test_daily_partition_runs_and_ingest_cache(harness, sample_logs, hashing_config, tmp_path):
    """date= mines one partition; an unchanged re-run takes ingest from Prefect's cache and changes no output."""
    from flows.selflearn_flow import selflearn_daily

    day = sorted(p.name for p in sample_logs.glob("day=*"))[0].split("=", 1)[1]
    out = tmp_path / "daily"
    args = dict(logs_root=str(sample_logs), out_root=str(out), date=day, config_path=str(hashing_config),
                return_state=True)
    states = []
    for _ in range(3):  # run 1 ingests; run 2 finds the ingest ledger changed by run 1; run 3 hits the cache
        flow_run_id, _ = _flow_run(selflearn_daily(**args))
        states.append(_task_states(flow_run_id)["ingest"])
        if len(states) == 1:
            labels = (out / "training/parquet/train.parquet").read_bytes()
    assert states[0] == "Completed" and states[2] == "Cached", states
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f["source_file"] for f in manifest["inputs"]} == {f"day={day}/part-0.parquet"}
    assert (out / "training/parquet/train.parquet").read_bytes() == labels

    with pytest.raises(ValueError):
        selflearn_daily(str(sample_logs), str(out), date="../etc", config_path=str(hashing_config))


# ------------------------------------------------------------------------------------------------ real server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM, then SIGKILL what is left of the process group we started (server and worker spawn children)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"prefect server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.mark.extended
@pytest.mark.timeout(900)
def test_deployment_runs_on_local_server_with_process_worker(sample_logs, hashing_config, tmp_path):
    """prefect server + work pool + `prefect deploy` from prefect.yaml + worker + `prefect deployment run`."""
    prefect = str(Path(sys.executable).with_name("prefect"))
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_CLI_PROMPT": "false", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "out"

    def cli(*args: str, timeout: float = 180) -> str:
        done = subprocess.run([prefect, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    procs: list[subprocess.Popen] = []
    try:
        with open(server_log, "w") as log:  # no scheduler: the daily cron must not start extra runs here
            procs.append(subprocess.Popen(
                [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-scheduler", "--no-ui",
                 "--analytics-off"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_healthy(api, procs[0], server_log)
        cli("work-pool", "create", "selflearn-pool", "--type", "process")
        cli("--no-prompt", "deploy", "-n", "selflearn-daily", "--prefect-file", str(ROOT / "prefect.yaml"))
        with open(worker_log, "w") as log:
            procs.append(subprocess.Popen([prefect, "worker", "start", "--pool", "selflearn-pool"], cwd=tmp_path,
                                          env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        params = {"logs_root": str(sample_logs), "out_root": str(out), "config_path": str(hashing_config)}
        run = subprocess.run([prefect, "deployment", "run", "selflearn-daily/selflearn-daily",
                              *(a for k, v in params.items() for a in ("-p", f"{k}={json.dumps(v)}")),
                              "--watch", "--watch-interval", "2", "--watch-timeout", "600"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=660)
        assert run.returncode == 0 and "Completed" in run.stdout, \
            f"{run.stdout[-3000:]}\n{run.stderr[-2000:]}\nworker:\n{worker_log.read_text()[-4000:]}"
    finally:
        for proc in reversed(procs):  # the worker first: it reports to the server while shutting down
            _stop(proc)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["weak_labels"] == pq.read_table(out / "training/parquet/train.parquet").num_rows > 0
    assert (out / "catalog.duckdb").is_file() and (out / "report.html").is_file()
