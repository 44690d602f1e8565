"""Scale-out under load: 1 replica against 2 behind nginx, a document ingested and a replica killed mid-run.

Starts the real topology with deploy/cluster.sh (nginx, `assistant serve` replicas each held to one
core with taskset, one PostgreSQL log in a fresh schema, the ingest writer), then:
1. one replica: bounded load (16 clients mixing /v1 streamed and not, gradio_client /ask and /search)
   for a steady window: /v1 answers per second is the baseline;
2. two replicas: the same load and window (the ratio of /v1 answers per second is `throughput_ratio`),
   then a new document dropped in the writer's inbox: `reload_seconds` runs from its commit until
   every replica cites it; then one replica is SIGKILLed mid-load and the load goes on;
3. every answered request is looked up in PostgreSQL: `lost` = answered but not logged complete.
The machine running it is also the load generator; on 2 cores the clients compete with the replicas.

    python benchmarks/bench_scale.py --quick      # < 10 min on 2 cores: 90 s windows
    python benchmarks/bench_scale.py --ci         # 2 replicas, 8 clients, ~30 s of load, 24-token answers (tests/test_cluster.py)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, table, write_result  # noqa: E402
from scale_load import Call, Load  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "deploy" / "cluster.sh"
NEW_DOC = """# Vault rotation drill {token}

The vault rotation drill {token} happens every second Tuesday. The on-call engineer rotates the
signing keys with `vaultctl rotate --drill {token}` and records the new key id in the runbook.
"""


class Cluster:
    """deploy/cluster.sh driven from Python: up, the replicas' pids and ports, down."""

    def __init__(self, run: Path, workspace: Path, inbox: Path, database_url: str, port: int) -> None:
        self.run, self.workspace, self.inbox, self.db, self.port = run, workspace, inbox, database_url, port
        self.url = ""

    def _sh(self, *args: str, timeout: float = 900) -> str:
        env = {**os.environ, "ASSISTANT_CLUSTER_DIR": str(self.run), "PYTHON": sys.executable}
        out = subprocess.run([str(CLUSTER), *args], env=env, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"cluster.sh {args[0]} failed:\n{out.stderr[-3000:]}")
        return out.stdout.strip()

    def up(self, replicas: int) -> float:
        started = time.perf_counter()
        self.url = self._sh("up", "--replicas", str(replicas), "--port", str(self.port), "--workspace",
                            str(self.workspace), "--inbox", str(self.inbox), "--database-url", self.db,
                            "--grace", "30").splitlines()[-1]
        return time.perf_counter() - started

    def down(self) -> None:
        self._sh("down", "--grace", "30")

    def replicas(self) -> list[tuple[int, int]]:
        """(pid, port) of each replica."""
        return [(int((self.run / f"replica-{i}.pid").read_text()), int((self.run / f"replica-{i}.port").read_text()))
                for i in range(64) if (self.run / f"replica-{i}.pid").exists()]


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM) of a replica."""
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                fields[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return {"rss_mb": fields.get("VmRSS", 0.0), "peak_mb": fields.get("VmHWM", 0.0)}


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the replicas have used so far."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def steady(seconds: float, pids: list[int]) -> tuple[float, float, float]:
    """A measuring window that starts once every client has sent its first request: (start, end, cores
    the replicas got in it). On a shared machine the cores they got can be far fewer than they were given."""
    time.sleep(min(10.0, seconds / 4))
    start, cpu = time.perf_counter(), cpu_seconds(pids)
    time.sleep(seconds)
    end = time.perf_counter()
    return start, end, round((cpu_seconds(pids) - cpu) / (end - start), 3)


def throughput(calls: list[Call], start: float, end: float) -> dict:
    """/v1 answers per second over [start, end]. Each answer counts for the share of its own time that fell
    in the window: answers last about as long as the window under this load and finish in waves, so whole
    completions alone would swing with where the window happens to cut a wave."""
    v1 = [c for c in calls if c.kind.startswith("v1") and c.answered]
    share = sum(max(0.0, min(c.ended, end) - max(c.started, start)) / max(c.seconds, 1e-9) for c in v1)
    inside = [c for c in calls if start <= c.ended <= end]
    return {"seconds": round(end - start, 1), "calls": len(inside),
            "v1_answers": sum(c.kind.startswith("v1") and c.answered for c in inside),
            "v1_answer_share": round(share, 2), "v1_answers_per_s": round(share / (end - start), 4),
            "errors": sum(not c.ok for c in inside)}


def cites(port: int, token: str, clients: dict) -> bool:
    """Whether this replica (asked directly, not through nginx) finds the new document: its /search is the
    passage list an answer cites from, and it is not queued behind the answers under load."""
    from gradio_client import Client

    try:
        if port not in clients:
            clients[port] = Client(f"http://127.0.0.1:{port}", verbose=False, httpx_kwargs={"timeout": 60})
        hits = clients[port].predict(f"vault rotation drill {token}", 3, "hybrid", api_name="/search")
    except Exception:  # noqa: BLE001 - busy or restarting: not yet
        return False
    return any(token in str(h.get("file", "")) for h in hits)


def reload_after_ingest(cluster: Cluster, limit_s: float = 120) -> dict:
    """Drop a new document in the inbox; seconds from its commit until every replica cites it."""
    token = uuid.uuid4().hex[:8]
    current = cluster.workspace / "index" / "CURRENT"
    before = current.read_text().strip()
    dropped = time.perf_counter()
    (cluster.inbox / f"vault-drill-{token}.md").write_text(NEW_DOC.format(token=token))
    while current.read_text().strip() == before:
        if time.perf_counter() - dropped > limit_s:
            return {"ingest_seconds": None, "reload_seconds": None, "token": token}
        time.sleep(0.1)
    committed = time.perf_counter()
    pending, clients = {port for _, port in cluster.replicas()}, {}
    while pending and time.perf_counter() - committed < limit_s:
        pending = {port for port in pending if not cites(port, token, clients)}
        if pending:
            time.sleep(0.5)
    return {"ingest_seconds": round(committed - dropped, 2), "token": token,
            "reload_seconds": None if pending else round(time.perf_counter() - committed, 2)}


def check_log(database_url: str, calls: list[Call]) -> dict:
    """Every answered call looked up in PostgreSQL: complete with text, and under its request id for /v1."""
    import psycopg

    from assistant.log.db import normalize_url  # the same URL the replicas were given

    answered = [c for c in calls if c.answered]
    url = normalize_url(database_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, status, content <> '', request_id FROM messages WHERE id = ANY(%s)",
            ([c.message_id for c in answered],))}
    logged = [c for c in answered if rows.get(c.message_id, (None, False))[:2] == ("complete", True)]
    with_id = [c for c in answered if c.kind.startswith("v1") and c.request_id]
    return {"answered": len(answered), "logged": len(logged), "lost": len(answered) - len(logged),
            "request_ids_checked": len(with_id),
            "request_ids_matched": sum(rows.get(c.message_id, (None, None, None))[2] == c.request_id for c in with_id)}


def proxy_retries(run: Path) -> int:
    """Requests nginx sent to more than one replica (its access log lists each upstream status)."""
    try:
        lines = (run / "nginx-access.log").read_text().splitlines()
    except OSError:
        return 0
    return sum("," in json.loads(line).get("upstream_status", "") for line in lines if line.startswith("{"))


def fresh_schema(base_url: str) -> tuple[str, str]:
    """A new, empty PostgreSQL schema for this run's log: (url that uses it, schema name)."""
    import psycopg
    from urllib.parse import quote

    from assistant.log.db import normalize_url  # the replicas' URL rules

    schema = f"bench_scale_{uuid.uuid4().hex[:10]}"
    plain = normalize_url(base_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base_url else "?"
    return f"{normalize_url(base_url)}{sep}options={quote(f'-csearch_path={schema}')}", schema


def drop_schema(base_url: str, schema: str) -> None:
    import psycopg

    from assistant.log.db import normalize_url  # the replicas' URL rules

    plain = normalize_url(base_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def postgres_url() -> str:
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_POSTGRES_URL")
    if not url:
        out = subprocess.run(["bash", str(ROOT / "scripts" / "start_postgres.sh")], capture_output=True, text=True)
        url = out.stdout.strip().partition("TEST_POSTGRES_URL=")[2]
    if not url:
        raise SystemExit("bench_scale needs PostgreSQL: set DATABASE_URL, or let scripts/start_postgres.sh start one")
    return url


def run(args: argparse.Namespace) -> dict:
    base = postgres_url()
    db_url, schema = fresh_schema(base)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    inbox = tmp / "inbox"
    shutil.copytree(ROOT / "docs", inbox, ignore=shutil.ignore_patterns("images", "zh"))
    if args.ci:  # a small index: the CI run is about the topology, not about ingest speed
        for extra in sorted(inbox.iterdir())[4:]:
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    cluster = Cluster(tmp / "run", tmp / "workspace", inbox, db_url, args.port)
    result: dict = {"proxy": "nginx", "log_backend": "postgresql", "clients": args.clients,
                    "max_tokens": args.max_tokens, "window_s": args.window, "cores": os.cpu_count(),
                    "cores_per_replica": 1, "killed_replica": False}
    calls: list[Call] = []
    try:
        if not args.ci:
            result["up_1_s"] = round(cluster.up(1), 1)
            load = Load(cluster.url, clients=args.clients, max_tokens=args.max_tokens).start()
            start, end, cores = steady(args.window, [pid for pid, _ in cluster.replicas()])
            memory = [memory_mb(pid) for pid, _ in cluster.replicas()]
            load.stop()  # the answers in flight at the window's end finish: their share counts
            calls += load.calls
            result["one_replica"] = {**throughput(load.calls, start, end), "cores_used": cores, "memory": memory}
            cluster.down()
        result["up_2_s"] = round(cluster.up(2), 1)
        result["replicas"] = len(cluster.replicas())
        load = Load(cluster.url, clients=args.clients, max_tokens=args.max_tokens).start()
        start, end, cores = steady(args.window, [pid for pid, _ in cluster.replicas()])
        memory = [memory_mb(pid) for pid, _ in cluster.replicas()]
        result.update(reload_after_ingest(cluster))
        victim_pid, _ = cluster.replicas()[-1]
        killed_at = time.perf_counter()
        os.kill(victim_pid, signal.SIGKILL)
        result["killed_replica"] = True
        time.sleep(args.after_kill)
        load.stop()
        calls += load.calls
        after = [c for c in load.calls if c.ended >= killed_at]
        result["after_kill"] = {"calls": len(after), "errors": sum(not c.ok for c in after),
                                "answered": sum(c.answered for c in after)}
        result["error_samples"] = sorted({f"{c.kind} {'after' if c.ended >= killed_at else 'before'} kill: "
                                          f"{c.error[:160]}" for c in load.calls if not c.ok})[:12]
        result["two_replicas"] = {**throughput(load.calls, start, end), "cores_used": cores, "memory": memory}
        result["proxy_retries"] = proxy_retries(cluster.run)
        cluster.down()
    finally:
        try:
            cluster.down()
        except Exception:  # noqa: BLE001 - already down
            pass
    answers = [c for c in calls if c.answered]
    result.update(requests=len(calls), errors=sum(not c.ok for c in calls),
                  error_share=round(sum(not c.ok for c in calls) / max(1, len(calls)), 4),
                  error_kinds=sorted({c.error.split(":")[0] for c in calls if not c.ok}),
                  **check_log(db_url, calls),
                  p50_s=round(percentile([c.seconds for c in answers], 0.5), 2),
                  p95_s=round(percentile([c.seconds for c in answers], 0.95), 2),
                  by_kind={k: {"requests": sum(c.kind == k for c in calls),
                               "errors": sum(c.kind == k and not c.ok for c in calls),
                               "p50_s": round(percentile([c.seconds for c in calls if c.kind == k and c.ok], 0.5), 2),
                               "p95_s": round(percentile([c.seconds for c in calls if c.kind == k and c.ok], 0.95), 2)}
                           for k in ("v1", "v1_stream", "ask", "search")})
    base_rate = result.get("one_replica", {}).get("v1_answers_per_s")
    result["throughput_ratio"] = (round(result["two_replicas"]["v1_answers_per_s"] / base_rate, 3)
                                  if base_rate else None)
    one_cores = result.get("one_replica", {}).get("cores_used")
    result["cores_used_ratio"] = (round(result["two_replicas"]["cores_used"] / one_cores, 3)
                                  if one_cores else None)  # what 2 replicas really got over what 1 got
    result["memory_per_replica_mb"] = max((m["rss_mb"] for m in result["two_replicas"]["memory"]), default=0.0)
    drop_schema(base, schema)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="90 s windows: under 10 minutes on 2 cores")
    ap.add_argument("--ci", action="store_true", help="2 replicas only, a short window (the CI test)")
    ap.add_argument("--window", type=float, help="seconds of steady load measured per phase (default 180; "
                    "--quick 90, --ci 15)")
    ap.add_argument("--after-kill", type=float, help="seconds of load after the kill (default 30; --ci 8)")
    ap.add_argument("--clients", type=int, help="default 16; --ci 8 (the CI run stays near 2 minutes)")
    ap.add_argument("--max-tokens", type=int, help="per answer, default 48 (--ci 24): keeps CPU answers seconds long")
    ap.add_argument("--port", type=int, default=18380)
    ap.add_argument("--json", help="also write the result here (besides benchmarks/results/scale.json)")
    args = ap.parse_args()
    args.window = args.window or (15 if args.ci else 90 if args.quick else 180)
    args.after_kill = args.after_kill or (8 if args.ci else 20 if args.quick else 30)
    args.clients = args.clients or (8 if args.ci else 16)
    args.max_tokens = args.max_tokens or (24 if args.ci else 48)
    started = time.perf_counter()
    result = run(args)
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["mode"] = "ci" if args.ci else "quick" if args.quick else "full"
    one, two = result.get("one_replica", {}), result["two_replicas"]
    print(table(["replicas", "window s", "cores used", "calls", "/v1 answers", "/v1 answers/s", "errors", "max RSS MB"],
                [[n, r["seconds"], r["cores_used"], r["calls"], r["v1_answers"], r["v1_answers_per_s"], r["errors"],
                  max((m["rss_mb"] for m in r["memory"]), default=0.0)] for n, r in ((1, one), (2, two)) if r]))
    print(table(["requests", "errors", "answered", "logged", "lost", "killed", "reload s", "p50 s", "p95 s",
                 "ratio 2/1"],
                [[result["requests"], result["errors"], result["answered"], result["logged"], result["lost"],
                  result["killed_replica"], result["reload_seconds"], result["p50_s"], result["p95_s"],
                  result["throughput_ratio"]]]))
    path = write_result("scale" if not args.ci else "scale_ci", result)
    print(f"wrote {path}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
