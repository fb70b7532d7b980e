"""docs/benchmarks.json (everything measured) and docs/benchmarks.md (the tables)."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.bench.raw import best

GOALS = [
    # (label, how the figure is read from the report, goal, met?)
    ("end to end / naive peer on the same runtime (one image per request)", lambda r: r["ratios"]["e2e_over_naive_same_runtime"], "≥ 1.1", lambda v: v >= 1.1),
    ("batch submit (8 per request) / naive peer on the same runtime", lambda r: r["ratios"]["e2e_batch_submit_over_naive_same_runtime"], "≥ 1.5",
        lambda v: v >= 1.5),
    ("end to end / raw pipeline (same runtime)", lambda r: r["ratios"]["e2e_over_raw"], "≥ 0.70", lambda v: v >= 0.70),
    ("end to end / Ray Serve async inference (Celery on Redis)", lambda r: r["ratios"]["e2e_over_ray_async"], "≥ 1.5", lambda v: v >= 1.5),
    ("submit p99 while the models are saturated (ms)", lambda r: r["submit_p99_ms_saturated"], "≤ 100", lambda v: v is not None and v <= 100),
    ("service CPU per task / raw pipeline CPU per image", lambda r: r["ratios"]["service_cpu_over_raw_cpu"], "≤ 1.5", lambda v: v <= 1.5),
    ("idle task start p99 (ms)", lambda r: r["idle_task_start_ms"]["p99"], "≤ 100", lambda v: v <= 100),
    ("memory growth after the first 500 tasks (MB)", lambda r: r["memory_mb"]["growth_after_first_wave"], "no growth", lambda v: v <= 50),
    ("lost or failed tasks", lambda r: r["lost_or_failed_tasks"], "0", lambda v: v == 0),
    ("end to end / naive peer on PyTorch", lambda r: r["ratios"]["e2e_over_naive"], "reported", lambda v: True),
    ("fastest detector runtime / PyTorch eager (decode, letterbox, network, NMS)", lambda r: r["ratios"]["fastest_runtime_over_pytorch"], "reported",
        lambda v: True),
]

RUN_LABELS = {
    "memory": "Primscene (defaults: batch dispatch, throughput mode), 1 image per request, 2,000 tasks on one service",
    "batch_off": "Primscene, dispatch batches of 1 (`PRIMSCENE_BATCH_SIZE=1`)",
    "proxy": "Primscene, Serve's proxy (throughput mode off)",
    "pytorch": "Primscene, PyTorch detector",
}


def _latency(p: dict) -> str:
    return f"{p['p50']:.0f} / {p['p95']:.0f} / {p['p99']:.0f}" if p else "–"


def _cpu_total(cpu: dict[str, float]) -> float:
    return sum(ms for role, ms in cpu.items() if role != "load clients")


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(report, indent=2) + "\n")
    settings, summary = report["settings"], report["summary"]
    lines = [
        "# Benchmarks",
        "",
        f"Made by `python scripts/benchmark.py` in {report['seconds']} s on {report['machine']['cpus']} CPU cores "
        f"({report['machine']['processor']}), everything (service, clients, PostgreSQL, peers) on the same cores, one after another. "
        f"The goals' first four ratios are paired: the raw pipeline, the naive peer and the service take turns in each of "
        f"{settings['rounds']} rounds, each ratio is taken within its round, and the median over the rounds is the figure. "
        f"Service: configs/local.yaml on PostgreSQL, detector runtime `{settings['runtime']}`, {settings['service_threads']} thread per model replica; "
        f"{settings['clients']} concurrent clients (one user each), {settings['images_per_wave']} held-out test images per wave.",
        "",
        "## Goals",
        "",
        "| goal | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    for label, read, target, met in GOALS:
        value = read(report)
        lines.append(f"| {label} | {value} | {target} | {'yes' if met(value) else '**no**'} |")
    lines += [
        "",
        "## Under load (HTTP)",
        "",
        "Every client sends an image (or 8, for the batch submit) and waits for its result before sending the next: Primscene's "
        "clients send `Prefer: wait=60`, so one request brings the result back; the naive peer answers synchronously; the Ray async "
        "peer's clients poll the task's status. Images/s = results received over the clients' own wall time. Latency = the "
        "client's send → result, p50 / p95 / p99 ms. In every wave of Primscene one more client submits 50 images at 10 per second "
        "(no wait) after 3 s, while the models are saturated: the probe.",
        "",
        "### Rounds: the systems the goals compare, in turns",
        "",
        "| round | raw pipeline images/s (CPU ms per image) | naive peer images/s | Primscene, 1 per request: images/s, latency, submit (probe) "
        "| Primscene, 8 per request: images/s | e2e / naive | batch / naive | e2e / raw | service CPU / raw CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number, round_ in enumerate(report["rounds"], 1):
        single, batch = round_["service"]["waves"]
        ratios = round_["ratios"]
        lines.append(
            f"| {number} | {round_['raw']['pipeline_images_per_s']:.1f} ({round_['raw']['pipeline_cpu_ms_per_image']:.1f}) | "
            f"{round_['naive']['images_per_s']:.1f} | {single['images_per_s']:.1f}, {_latency(single['completion_ms'])}, "
            f"{_latency(single['probe_submit_ms'])}{'' if single['probe_while_saturated'] else ' (not saturated)'} | {batch['images_per_s']:.1f} | "
            f"{ratios['e2e_over_naive_same_runtime']} | {ratios['e2e_batch_submit_over_naive_same_runtime']} | {ratios['e2e_over_raw']} | "
            f"{ratios['service_cpu_over_raw_cpu']} |"
        )
    lines += [
        "",
        "### The other runs, once each after the rounds",
        "",
        "| run | images | images/s | latency | submit (probe) | failed | service CPU ms per task |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in report["service"].items():
        for i, wave in enumerate(run["waves"], 1):
            lines.append(
                f"| {RUN_LABELS.get(name, name)}, wave {i} | {wave['images']} | {wave['images_per_s']:.1f} | {_latency(wave['completion_ms'])} | "
                f"{_latency(wave['probe_submit_ms'])}{'' if wave['probe_while_saturated'] else ' (not saturated)'} | "
                f"{sum(wave['failed'].values())} | {_cpu_total(wave['cpu_ms_per_task']):.1f} |"
            )
    naive = report["naive_pytorch"]
    lines.append(
        f"| naive peer (pytorch, synchronous `def /predict`) | {naive['images']} | {naive['images_per_s']:.1f} | "
        f"{_latency(naive['completion_ms'])} | – | "
        f"{sum(naive['failed'].values())} | {_cpu_total(naive['cpu_ms_per_task']):.1f} |"
    )
    peer = report["ray_async"]
    lines += [
        f"| Ray Serve async inference (Celery on Redis, polled every {peer['poll_s']} s) | {peer['images']} | {peer['images_per_s']:.1f} | "
        f"{_latency(peer['completion_ms'])} | – | {sum(peer['failed'].values())} | {_cpu_total(peer['cpu_ms_per_task']):.1f} (Redis not counted) |",
        "",
        f"Raw pipeline, same runtime, best configuration ({summary['raw_pipeline_best']['threads']} threads, batch "
        f"{summary['raw_pipeline_best']['batch']}), median of the rounds: {summary['raw_pipeline_images_per_s']:.1f} images/s, "
        f"{summary['raw_pipeline_cpu_ms_per_image']:.1f} CPU ms per image. End to end (median round): {summary['e2e_images_per_s']:.1f} images/s. "
        "The runs after the rounds are compared with the rounds' median, so their ratios carry the machine's drift.",
        "",
        "## Where the time goes",
        "",
        "CPU milliseconds per task by process, over the one-image-per-request wave of the median round (PostgreSQL's server processes included).",
        "",
        "| process | CPU ms per task |",
        "| --- | --- |",
        *(f"| {role} | {ms:.1f} |" for role, ms in summary["cpu_ms_per_task"].items()),
        f"| **service total (clients excluded)** | **{summary['service_cpu_ms_per_task']:.1f}** |",
        "",
        "## Raw pipeline (in-process)",
        "",
        "Detector alone and detector + classifier, encoded JPEG in, best batch size per thread count.",
        "",
        "| runtime | threads | detector images/s | pipeline images/s | pipeline CPU ms per image | best batch |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for runtime, rows in report["raw"].items():
        for threads in sorted({r["threads"] for r in rows}):
            row = best(rows, "pipeline_images_per_s", threads)
            detector = best(rows, "detector_images_per_s", threads)["detector_images_per_s"]
            lines.append(
                f"| {runtime} | {threads} | {detector:.1f} | {row['pipeline_images_per_s']:.1f} | {row['pipeline_cpu_ms_per_image']:.1f} | {row['batch']} |"
            )
    lines += [
        "",
        "Detector network alone, ms per 1×3×S×S image: "
        + "; ".join(f"{threads} thread(s): " + ", ".join(f"{rt} {ms:.1f}" for rt, ms in per.items()) for threads, per in report["network_ms"].items())
        + ".",
        "",
        "## Memory",
        "",
        "PSS of every process of the service (Ray's GCS, raylet, dashboard agents, replicas; shared pages split among them).",
        "",
        f"- idle, after warm-up: {report['memory_mb']['idle']:.0f} MB",
        f"- peak under load: {report['memory_mb']['peak_under_load']:.0f} MB",
        f"- after each wave of {settings['images_per_wave']} tasks: {', '.join(f'{m:.0f}' for m in report['memory_mb']['after_each_wave'])} MB",
        f"- growth from the first wave to the last: {report['memory_mb']['growth_after_first_wave']:+.0f} MB",
        *(["- of which, by process: " + ", ".join(f"{kind} {mb:+.0f}" for kind, mb in list(by_role.items())[:6]) + " MB"]
          if (by_role := report["memory_mb"].get("growth_after_first_wave_by_role")) else []),
        "",
        f"Idle task start (accepted → claimed), 20 tasks one at a time: {_latency(report['idle_task_start_ms'])} ms.",
        "",
    ]
    levers = Path(__file__).resolve().parents[2] / "docs" / "levers.md"  # kept by hand: one row per design change
    if levers.exists():
        lines += ["", levers.read_text().strip(), ""]
    lines += [
        "",
        "## Profiles",
        "",
        "`python scripts/profile_service.py --label NAME` samples every Serve process with py-spy under load: "
        "[before](profiles/before.md) (the old design, flood load) and [after](profiles/after.md) (this design, "
        "clients waiting for results), with the top frames of each process; the fewer round trips of 2026-12-02: "
        "[before](profiles/before-round-trips.md) and [after](profiles/after-round-trips.md) (throughput mode).",
        "",
    ]
    (out / "benchmarks.md").write_text("\n".join(lines))
