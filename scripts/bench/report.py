"""docs/benchmarks.json (everything measured) and docs/benchmarks.md (the tables)."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.bench.raw import best

GOALS = [
    # (label, how the figure is read from the report, goal, met?)
    ("fastest detector runtime / PyTorch eager (decode, letterbox, network, NMS)", lambda r: r["ratios"]["fastest_runtime_over_pytorch"], "≥ 3", lambda v: v >= 3),
    ("the same, network alone", lambda r: r["ratios"]["fastest_runtime_over_pytorch_network_only"], "≥ 3", lambda v: v >= 3),
    ("mAP50-95 lost by the fastest runtime (docs/evaluation.json)", lambda r: r.get("map_drop_fastest_runtime"), "≤ 0.01", lambda v: v is not None and v <= 0.01),
    ("end to end / raw pipeline (same runtime)", lambda r: r["ratios"]["e2e_over_raw"], "≥ 0.85", lambda v: v >= 0.85),
    ("end to end / naive peer", lambda r: r["ratios"]["e2e_over_naive"], "≥ 2", lambda v: v >= 2),
    ("submit p99 while the pipeline is saturated (ms)", lambda r: r["submit_p99_ms_saturated"], "≤ 100", lambda v: v is not None and v <= 100),
    ("idle task start p99 (ms)", lambda r: r["idle_task_start_ms"]["p99"], "≤ 100", lambda v: v <= 100),
    ("batching on / off", lambda r: r["ratios"]["batch_on_over_off"], "reported", lambda v: True),
    ("memory growth after the first 500 tasks (MB)", lambda r: r["memory_mb"]["growth_after_first_wave"], "no growth", lambda v: v <= 50),
    ("lost or failed tasks", lambda r: r["lost_or_failed_tasks"], "0", lambda v: v == 0),
]


def _latency(p: dict) -> str:
    return f"{p['p50']:.0f} / {p['p95']:.0f} / {p['p99']:.0f}" if p else "–"


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(report, indent=2) + "\n")
    settings, summary = report["settings"], report["summary"]
    lines = [
        "# Benchmarks",
        "",
        f"Made by `python scripts/benchmark.py` in {report['seconds']} s on {report['machine']['cpus']} CPU cores "
        f"({report['machine']['processor']}), everything (service, clients, PostgreSQL) on the same cores. "
        f"Service: configs/local.yaml on PostgreSQL, detector runtime `{settings['runtime']}`, {settings['service_threads']} thread per model replica; "
        f"{settings['clients']} concurrent clients, {settings['images_per_wave']} held-out test images per wave.",
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
        "## Raw pipeline (in-process)",
        "",
        "Detector alone and detector + classifier, encoded JPEG in, best batch size per thread count.",
        "",
        "| runtime | threads | detector images/s | pipeline images/s | best batch |",
        "| --- | --- | --- | --- | --- |",
    ]
    for runtime, rows in report["raw"].items():
        for threads in sorted({r["threads"] for r in rows}):
            row = best(rows, "pipeline_images_per_s", threads)
            detector = best(rows, "detector_images_per_s", threads)["detector_images_per_s"]
            lines.append(f"| {runtime} | {threads} | {detector:.1f} | {row['pipeline_images_per_s']:.1f} | {row['batch']} |")
    lines += [
        "",
        "Detector network alone, ms per 1×3×S×S image: "
        + "; ".join(f"{threads} thread(s): " + ", ".join(f"{rt} {ms:.1f}" for rt, ms in per.items()) for threads, per in report["network_ms"].items())
        + ".",
        "",
        "## Under load (HTTP)",
        "",
        f"Each wave: {settings['clients']} clients (one user each) submit their share of the images back to back (the flood), "
        f"then list their tasks every {settings['poll_s']} s until all have finished. While the flood saturates the models, one more client "
        "submits 50 images at 10 per second (the probe). Latencies p50 / p95 / p99 in ms: submit = the POST as the client timed it; "
        "completion = accepted → finished, from the service's own timestamps. Images/s = completed tasks over the span from the "
        "first accepted to the last finished.",
        "",
        "| run | images | images/s | submit (flood) | submit (probe) | completion | failed | memory peak (PSS MB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in report["service"].items():
        for i, wave in enumerate(run["waves"], 1):
            lines.append(
                f"| service, {name}, wave {i} | {wave['images']} | {wave['images_per_s']:.1f} | {_latency(wave['submit_ms'])} | "
                f"{_latency(wave['probe_submit_ms'])}{'' if wave['probe_while_saturated'] else ' (not saturated)'} | "
                f"{_latency(wave['completion_ms'])} | {sum(wave['failed'].values())} | {wave['memory_peak_mb']['pss']:.0f} |"
            )
    naive = report["naive"]
    lines += [
        f"| naive peer (PyTorch, synchronous) | {naive['images']} | {naive['images_per_s']:.1f} | – | – | {_latency(naive['completion_ms'])} | "
        f"{sum(naive['failed'].values())} | {naive['memory_peak_mb']['pss']:.0f} |",
        "",
        f"Raw pipeline, same runtime, best configuration: {summary['raw_pipeline_images_per_s']:.1f} images/s "
        f"({summary['raw_pipeline_best']['threads']} threads, batch {summary['raw_pipeline_best']['batch']}). "
        f"End to end (median wave): {summary['e2e_images_per_s']:.1f} images/s.",
        "",
        "## Where the time goes",
        "",
        "CPU milliseconds per task by process, over the median wave of the main run (all cores together; "
        "more CPU per task than the wall time per task means the cores were shared).",
        "",
        "| process | CPU ms per task |",
        "| --- | --- |",
        *(f"| {role} | {ms:.1f} |" for role, ms in summary["cpu_ms_per_task"].items()),
        f"| **total** | **{sum(summary['cpu_ms_per_task'].values()):.1f}** |",
        "",
        "## Memory",
        "",
        "PSS of every process of the service (Ray's GCS, raylet, dashboard agents, replicas; shared pages split among them).",
        "",
        f"- idle, after warm-up: {report['memory_mb']['idle']:.0f} MB",
        f"- peak under load: {report['memory_mb']['peak_under_load']:.0f} MB",
        f"- after each wave of {settings['images_per_wave']} tasks: {', '.join(f'{m:.0f}' for m in report['memory_mb']['after_each_wave'])} MB",
        f"- growth from the first wave to the last: {report['memory_mb']['growth_after_first_wave']:+.0f} MB",
        "",
        f"Idle task start (accepted → claimed), 20 tasks one at a time: {_latency(report['idle_task_start_ms'])} ms.",
        "",
    ]
    (out / "benchmarks.md").write_text("\n".join(lines))
