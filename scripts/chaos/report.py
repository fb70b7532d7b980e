"""The run's figures as Markdown, written into docs/reliability.md between two markers (the rest
of that page is prose kept by hand)."""

from __future__ import annotations

import re
from pathlib import Path

START, END = "<!-- reliability-run:start -->", "<!-- reliability-run:end -->"


def _ms(p: dict) -> str:
    return f"{p.get('p50', 0) / 1000:.1f} / {p.get('p95', 0) / 1000:.1f} / {p.get('p99', 0) / 1000:.1f} s" if p else "–"


def _answers(answers: dict) -> str:
    return ", ".join(f"{code}: {n}" for code, n in sorted(answers.items())) or "–"


def markdown(report: dict) -> str:
    rows = [
        "| phase | accepted | succeeded | failed | lost | results / duplicated primitives | stuck running | 5xx to clients (of which 500) "
        "| submit answers (incl. retries) | completion p50 / p95 / p99 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("load", "chaos", "outage", "poison", "shutdown"):
        if name not in report:
            continue
        r, db = report[name], report[name]["database"]
        rows.append(
            f"| {name} | {db['accepted']} | {r['succeeded']} | {r['failed']} | {db['lost']} | "
            f"{db['with_result']} / {db['duplicated_primitives']} | {db['stuck_running']} | "
            f"{r['server_errors']} ({r['submit_answers'].get('500', 0)}) | "
            f"{_answers(r['submit_answers'])} | {_ms(r['completion_ms'])} |"
        )
    shown = ("tasks", "clients", "fault_tasks", "fault_clients", "kill_every_s", "outage_s", "seed")
    arguments = ", ".join(f"{k}={report['args'][k]}" for k in shown if k in report["args"])
    lines = [f"Run started {report['started_at']}; service ready in {report['ready_s']} s. Arguments: {arguments}."]
    if "rerun" in report:
        lines[0] += f" Phases {', '.join(report['rerun']['phases'])} run again at {report['rerun']['started_at']}."
    lines += ["", *rows, ""]
    if "chaos" in report:
        c = report["chaos"]
        lines.append(
            f"- **Chaos** (seed {c['seed']}): killed {_answers(c['kills'])}; {c['tasks_retried']} tasks needed more than "
            f"one attempt (attempts: {_answers(c['database']['attempts'])}); {c['submit_retries']} submits retried with "
            f"their Idempotency-Key; completion p99 under chaos {c['completion_ms'].get('p99', 0) / 1000:.1f} s."
        )
    if "outage" in report:
        o = report["outage"]["outage"]
        lines.append(
            f"- **PostgreSQL stopped for {o['seconds']:.0f} s**: {o['probe_requests']} probe requests answered "
            f"{_answers(o['probe_answers'])}; all 503 with `Retry-After`: {o['all_503_with_retry_after']}; answer time "
            f"p50 {o['probe_ms'].get('p50', 0):.0f} ms, max {o['probe_ms'].get('max', 0):.0f} ms. "
            f"{o['accepted_before_outage']} tasks accepted before the outage, {o['lost_of_accepted_before']} of them lost; "
            f"first submit accepted {o['first_accepted_submit_after_restart_s']} s after PostgreSQL was back."
        )
    if "poison" in report:
        p = report["poison"]["poison"]
        lines.append(
            f"- **Poison task**: `{p['status']}` after {p['attempts']} attempt(s) with the reason “{p['error']}”; "
            f"the {report['poison']['succeeded']} tasks around it succeeded; model replicas unchanged: {p['replicas_unchanged']}."
        )
    if "shutdown" in report:
        s = report["shutdown"]["shutdown"]
        lines.append(
            f"- **`serve.shutdown()` under load** with {_answers(s['status_at_shutdown'])} (whole service); right after "
            f"shutdown: {_answers(s['status_right_after_shutdown'])}; shutdown took {s['shutdown_s']} s, the fresh "
            f"start was ready in {s['restart_ready_s']} s; tasks left `running` after the drain: {s['running_after_restart_and_drain']}."
        )
    return "\n".join(lines)


def write_into(page: Path, report: dict) -> None:
    text = page.read_text()
    block = f"{START}\n{markdown(report)}\n{END}"
    if START not in text:
        raise ValueError(f"{page} has no {START} … {END} block to fill")
    page.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
