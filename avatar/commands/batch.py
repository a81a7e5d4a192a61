"""``avatar batch fit|listen|track|perceive INPUT -o OUT_DIR [--workers N] [--ray [ADDRESS]] [--retries 2] [--force]
[command options]`` (:func:`avatar.batch.runner.run_batch`).

Exit code 0 when every item succeeded, 1 when some failed (one ``failed: INPUT: error`` line each on stderr),
2 for bad arguments, 128 + the signal number when SIGINT or SIGTERM stopped it (the report says what finished;
rerunning completes the rest).
"""

from __future__ import annotations

import re
import signal
import sys

#: What ``--ray`` may be followed by to be read as its address (anything else: a local Ray).
RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[\w.-]+:\d+)$")


def ray_flag_value(argv: list[str]) -> list[str]:
    """``--ray`` takes an optional address: give a bare ``--ray`` the value ``local`` (typer options cannot
    have an optional value)."""
    out = []
    for k, token in enumerate(argv):
        out.append(token)
        if token == "--ray" and (k + 1 == len(argv) or not RAY_ADDRESS.match(argv[k + 1])):
            out.append("local")
    return out


def run_batch_command(command: str, inputs, out_dir, workers=None, ray=None, retries: int = 2, force: bool = False,
                      console=None, **options) -> int:
    """Run the batch with a progress bar on ``console`` (a rich console, stderr); returns the exit code.

    Raises:
        AvatarInputError: bad arguments, before anything is written.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from avatar.batch import run_batch

    options = {k: v for k, v in options.items() if v is not None and v is not False}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"avatar batch {command}", total=None, rate="")

        def update(event: dict) -> None:
            kind = event["event"]
            if kind == "planned":
                bar.update(task, total=event["total"])
                if event.get("note"):
                    bar.console.print(f"note: {event['note']}", highlight=False)
            elif kind in ("done", "skipped", "failed"):
                bar.advance(task)
                seconds = bar.tasks[0].elapsed or 0.0
                done = bar.tasks[0].completed
                bar.update(task, rate=f"{60.0 * done / seconds:.1f} items/min" if seconds > 0 else "")

        report = run_batch(command, inputs, out_dir, options, workers, ray, retries, force, update)
    for failure in report["failed"]:
        where = "" if failure["input"] in failure["error"] else f"{failure['input']}: "
        print(f"failed: {where}{failure['error']}", file=sys.stderr)
    summary = (f"{len(report['done'])} done, {len(report['skipped'])} skipped, {len(report['failed'])} failed in "
               f"{report['seconds']:.1f} s ({report['items_per_minute']:.1f} items/min, {report['workers']} "
               f"{report['backend']} workers); report: {out_dir}/batch_report.json")
    if report["interrupted"]:
        signum = report.get("interrupted_by") or signal.SIGINT
        print(f"stopped by {signal.Signals(signum).name}; {summary}; rerun to complete the rest")
        return 128 + int(signum)
    print(summary)
    return 1 if report["failed"] else 0
