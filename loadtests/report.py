"""What a load run measured: a summary table and a chart, from the run's CSV files.

    python -m loadtests.report bench-results/load/<run>   # redraw and reprint a finished run

Inputs (in the run folder): Locust's locust_stats.csv and locust_stats_history.csv
(--csv-full-history), locust_status.csv (status codes per request, from the locustfile)
and replicas.csv (from the poller).
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "locust"
AUTOSCALED = ("Router", "Embedder")


@dataclass
class RequestRow:
    name: str
    count: int
    failures: int
    p50: float
    p95: float
    p99: float
    rps: float
    codes: dict[int, int] = field(default_factory=dict)            # status → answers
    with_retry_after: dict[int, int] = field(default_factory=dict)  # 429/503 → with Retry-After

    def share(self, low: int, high: int) -> int:
        return sum(n for c, n in self.codes.items() if low <= c <= high)

    @property
    def refusals_with_retry_after(self) -> int:
        return sum(self.with_retry_after.values())

    @property
    def bad_5xx(self) -> int:
        """5xx answers other than a 503 with Retry-After (the one acceptable overload answer)."""
        return self.share(500, 599) - self.with_retry_after.get(503, 0)


def _num(value: str) -> float:
    try:
        return float(value)
    except ValueError:  # Locust writes "N/A" where it has no sample
        return float("nan")


def read_requests(run: Path) -> list[RequestRow]:
    rows: dict[str, RequestRow] = {}
    with open(run / f"{PREFIX}_stats.csv") as f:
        for r in csv.DictReader(f):
            rows[r["Name"]] = RequestRow(r["Name"], int(r["Request Count"]), int(r["Failure Count"]),
                                         _num(r["50%"]), _num(r["95%"]), _num(r["99%"]),
                                         _num(r["Requests/s"]))
    status = run / f"{PREFIX}_status.csv"
    if status.exists():
        total = rows.get("Aggregated")
        with open(status) as f:
            for r in csv.DictReader(f):
                code, n, ra = int(r["status"]), int(r["count"]), r["retry_after"] == "1"
                for row in (rows.get(r["name"]), total):
                    if row is None:
                        continue
                    row.codes[code] = row.codes.get(code, 0) + n
                    if ra:
                        row.with_retry_after[code] = row.with_retry_after.get(code, 0) + n
        # Locust's stats file is rewritten once a second and misses the last requests (those
        # of users stopping); the status file counts every request event, so counts come
        # from it (a failure is any answer but the request's success status, which is a 2xx).
        for row in rows.values():
            if row.codes:
                row.count = sum(row.codes.values())
                row.failures = row.count - row.share(200, 299)
    order = sorted((r for r in rows.values() if r.name != "Aggregated"), key=lambda r: -r.count)
    return order + ([rows["Aggregated"]] if "Aggregated" in rows else [])


def read_history(run: Path) -> dict[str, list[float]]:
    """The aggregated time series: timestamp, users, req/s, failures/s, p50, p95, p99."""
    cols: dict[str, list[float]] = defaultdict(list)
    with open(run / f"{PREFIX}_stats_history.csv") as f:
        for r in csv.DictReader(f):
            if r["Name"] != "Aggregated":
                continue
            for key, src in (("t", "Timestamp"), ("users", "User Count"), ("rps", "Requests/s"),
                             ("fps", "Failures/s"), ("p50", "50%"), ("p95", "95%"), ("p99", "99%")):
                cols[key].append(_num(r[src]))
    return dict(cols)


def read_replicas(run: Path) -> dict[str, list[tuple[float, int]]]:
    """deployment → [(timestamp, RUNNING replicas)]."""
    series: dict[str, list[tuple[float, int]]] = defaultdict(list)
    path = run / "replicas.csv"
    if path.exists():
        with open(path) as f:
            for r in csv.DictReader(f):
                series[r["deployment"]].append((float(r["timestamp"]), int(r["running"])))
    return dict(series)


def _ms(v: float) -> str:
    return "-" if v != v else f"{v:.0f}"  # NaN: no sample


def summary_table(rows: list[RequestRow]) -> str:
    head = ("| request | count | failures | 2xx | 4xx | 5xx | 429/503 with Retry-After | no answer | "
            "p50 ms | p95 ms | p99 ms | req/s |\n|---" + "|---:" * 11 + "|")
    lines = [head]
    for r in rows:
        name = "**all**" if r.name == "Aggregated" else r.name
        lines.append(f"| {name} | {r.count} | {r.failures} | {r.share(200, 299)} | {r.share(400, 499)} | "
                     f"{r.share(500, 599)} | {r.refusals_with_retry_after} | {r.codes.get(0, 0)} | "
                     f"{_ms(r.p50)} | {_ms(r.p95)} | {_ms(r.p99)} | {r.rps:.1f} |")
    return "\n".join(lines)


def replica_lines(replicas: dict[str, list[tuple[float, int]]]) -> list[str]:
    out = []
    for name in AUTOSCALED:
        points = [n for _, n in replicas.get(name, [])]
        if not points:
            out.append(f"{name}: no replica samples")
            continue
        peak = max(points)
        rose, fell = peak > points[0], points[-1] < peak
        out.append(f"{name}: min {min(points)}, max {peak} replicas (first {points[0]}, last "
                   f"{points[-1]}; {'rose' if rose else 'did not rise'} and "
                   f"{'fell' if fell else 'did not fall'})")
    return out


def plot(run: Path, t0: float | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display here; write a file
    import matplotlib.pyplot as plt

    hist = read_history(run)
    replicas = read_replicas(run)
    start = t0 if t0 is not None else (hist["t"][0] if hist.get("t") else 0.0)
    t = [x - start for x in hist.get("t", [])]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    ax1.plot(t, hist.get("rps", []), label="requests/s")
    ax1.plot(t, hist.get("fps", []), label="failures/s", color="tab:red")
    ax1.set_ylabel("per second")
    users = ax1.twinx()
    users.plot(t, hist.get("users", []), color="grey", linestyle="--", label="users")
    users.set_ylabel("users")
    ax1.legend(loc="upper left")
    users.legend(loc="upper right")
    for key, colour in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        ax2.plot(t, hist.get(key, []), label=key, color=colour)
    ax2.set_ylabel("latency ms (last 10 s)")
    ax2.legend(loc="upper left")
    for name, points in sorted(replicas.items()):
        if name.startswith("Shard"):
            continue  # one replica each by design; nothing to see
        ax3.step([p[0] - start for p in points], [p[1] for p in points], where="post", label=name)
    top = max((p[1] for pts in replicas.values() for p in pts), default=1)
    ax3.set_ylim(0, top + 0.5)
    ax3.set_ylabel("running replicas")
    ax3.set_xlabel("seconds since the load started")
    ax3.yaxis.get_major_locator().set_params(integer=True)
    ax3.legend(loc="upper left")
    fig.suptitle(f"Engram load test {run.name}")
    fig.tight_layout()
    out = run / "load.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def report(run: Path, t0: float | None = None) -> tuple[str, list[RequestRow]]:
    rows = read_requests(run)
    png = plot(run, t0)
    text = "\n".join([summary_table(rows), "", *replica_lines(read_replicas(run)), "",
                      f"chart: {png}"])
    (run / "summary.md").write_text(text + "\n")
    return text, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redraw and reprint a finished load run.")
    parser.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    text, _ = report(args.run)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
