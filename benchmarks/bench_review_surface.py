"""Reviewing in a real browser: the review surface (one question at a time,
keys) next to the grid + verification-queues panel flow, on the digits
example, with a scripted reviewer who answers from the ground truth.

Both flows run in one process, against one App server and one headless
Chromium, on the same triaged dataset:

- **surface** (``review_queue`` panel): the reviewer reads the question on
  screen, presses A (the label is right) or R (it is not) and waits for the
  next question. Per answer, *key to next question* is measured in the
  page: from the keydown event's timestamp to the first frame painted after
  the next question's crop is drawn (a MutationObserver on the crop's
  ``data-drawn``, then ``requestAnimationFrame`` + a task, i.e. after that
  frame); the same from the script's side (key press sent to the
  question seen, Playwright's round trips included) is reported as well.
  *Answers per minute* counts the answers over the time they took on
  screen; *stored per minute* over the time until the surface says all
  are saved (the review core wrote and logged each).
- **grid + panel** (``verification_queues``): what a reviewer did before:
  a click on the first row of "next yellow labels" (the App filters the
  grid to that label and opens its sample), a click on the label in the
  sample modal, a click outside to close it, a click on *Accept selected*
  or *Reject selected*, until the panel shows the decision counted. Each
  wait is timed; the modal's image gets a fixed 1.5 s to draw before its
  label takes a click (as in tests/app/test_panels_browser.py), counted in the
  total but not in the waits.

Nothing judges: the scripted reviewer answers as soon as a question is on
screen, so these are the tools' own times, not a person's pace. Every
decision is checked in the database afterwards (state, reviewer, audit
log).

    python benchmarks/bench_review_surface.py                   # 60 answers, 5 old-flow decisions
    python benchmarks/bench_review_surface.py --answers 200 --old 8 --json out.json

Needs playwright and /usr/bin/chromium (``bash .ci/setup --test``). Starts
its own ``mongod`` in a temporary folder (your database is not touched)
and removes it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

FIELD = "autolabels"
NAME = "stoplight-bench-review"
REVIEWER = "bench-reviewer"
TIMEOUT = 120_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

#: in-page recorder: keydown time -> the frame after the next crop is drawn
RECORDER = """() => {
  if (window.__reviewBench) return;
  const b = window.__reviewBench = { t0: null, lat: [], last: null };
  window.addEventListener('keydown', (e) => { b.t0 = e.timeStamp; }, true);
  new MutationObserver((muts) => {
    for (const m of muts) {
      const id = m.target.dataset.drawn;
      if (!id || id === b.last || b.t0 === null) continue;
      b.last = id;
      const t0 = b.t0;
      b.t0 = null;
      requestAnimationFrame(() => setTimeout(() => b.lat.push(performance.now() - t0), 0));
    }
  }).observe(document.body, { attributes: true, subtree: true, attributeFilter: ['data-drawn'] });
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def prepare(copies: int):
    """The digits example, scored (every signal the example allows: kNN
    agreement and RER on its label embeddings, consensus with its second
    classifier, ...), calibrated on half of its images and triaged; returns
    the dataset and ``{label_id: kind}`` (ok, wrong_class, background,
    jitter) from its construction."""
    import fiftyone as fo
    import numpy as np
    from digits_dataset import build_digits_dataset
    from stoplight.plugins.scoring.scores import score_labels
    from stoplight.plugins.triage import workflow

    if fo.dataset_exists(NAME):
        fo.delete_dataset(NAME)
    ds, info = build_digits_dataset(seed=0, copies=copies, name=NAME)
    ds.persistent = True
    kinds = dict(zip(ds.values(f"{FIELD}.detections.id", unwind=True), info["kinds"]))
    score_labels(ds, FIELD, consensus_fields=["knn_model"], progress=False)
    ids = ds.values("id")
    rng = np.random.default_rng(0)
    ds.select(rng.choice(ids, size=len(ids) // 2, replace=False)).tag_samples("verified")
    workflow.calibrate_triage(ds.match_tags("verified"), FIELD, "ground_truth", target_precision=0.9)
    workflow.assign_queues(ds, FIELD)
    return ds, kinds


def start_app(root: Path) -> tuple[subprocess.Popen, str]:
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--address", "127.0.0.1", "--port", str(port)],
        stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT, cwd=str(root),
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the App server exited early; see {root / 'server.log'}")
        try:
            with urllib.request.urlopen(f"{url}/fiftyone", timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the App server did not start within 300 s")


def open_panel(page, name: str) -> None:
    tab = page.locator(f'[data-cy="panel-tab-{name}"]')
    if tab.count():
        tab.first.click()
    else:
        page.locator('[data-cy="new-panel-btn"]').first.click()
        page.locator(f'[data-cy="new-panel-option-{name}"]').click()


def open_dataset(page, url: str) -> None:
    page.goto(f"{url}/datasets/{NAME}")
    page.wait_for_selector('[data-cy="fo-grid"] [data-cy="looker"]', timeout=TIMEOUT)


def run_surface(page, url: str, kinds: dict, answers: int, shot=None) -> dict:
    """The scripted reviewer on the review surface."""
    from playwright.sync_api import expect

    open_dataset(page, url)
    open_panel(page, "review_queue")
    name = page.locator('[data-cy="review-name-input"]')
    name.click(timeout=TIMEOUT)
    page.keyboard.type(REVIEWER)
    page.keyboard.press("Enter")
    root = page.locator('[data-cy="review-queue"]')
    drawn = """(old) => {
        const r = document.querySelector('[data-cy="review-queue"]');
        const c = r && r.querySelector('[data-cy="review-crop"]');
        return !!(r && c && r.dataset.questionId && r.dataset.questionId !== old && c.dataset.drawn === r.dataset.questionId);
    }"""
    page.wait_for_function(drawn, arg="", timeout=TIMEOUT)
    page.evaluate(RECORDER)
    load0 = _load()
    outside, decided, groups = [], {}, 0
    t_start = time.perf_counter()
    for i in range(answers):
        lid = root.get_attribute("data-question-id")
        if lid.startswith("group:"):
            # "accept these N similar labels?": the scripted reviewer goes
            # through them one by one (R), so every decision is checked
            key, groups = "r", groups + 1
        else:
            action = "accept" if kinds[lid] == "ok" else "reject"
            key = "a" if action == "accept" else "r"
            decided[lid] = action
        t0 = time.perf_counter()
        page.keyboard.press(key)
        try:
            page.wait_for_function(drawn, arg=lid, timeout=TIMEOUT)
        except Exception:
            print(f"[bench] no next question after {i} answers; the surface shows:\n"
                  + page.locator('[data-cy="review-queue"]').inner_text()[:2000])
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "bench_review_surface_failure.png"))
            raise
        outside.append(time.perf_counter() - t0)
        if shot and i == 11:
            shot(page)
    t_screen = time.perf_counter() - t_start
    expect(page.locator('[data-cy="review-pending"]')).to_have_text("all saved", timeout=TIMEOUT)
    t_stored = time.perf_counter() - t_start
    inside = page.evaluate("() => window.__reviewBench.lat")
    return dict(decided=decided, groups_declined=groups, inside_s=[v / 1000 for v in inside], outside_s=outside,
                screen_s=t_screen, stored_s=t_stored, load_before=load0, load_after=_load())


def run_old_flow(page, url: str, ds, kinds: dict, decisions: int) -> dict:
    """The scripted reviewer on the grid + verification_queues panel."""
    import re

    from playwright.sync_api import expect
    from stoplight.plugins.panels.shared import queue_stats

    open_dataset(page, url)
    page.locator('[data-cy="btn-clear-view-bar"]').click()
    open_panel(page, "verification_queues")
    progress = page.locator("p").filter(has_text="Review progress")
    expect(progress).to_be_visible(timeout=TIMEOUT)
    upcoming = page.locator("table").filter(has_text="P(correct)")
    modal = page.locator('[data-cy="modal-content"]')
    boxes = {}
    for lids, bbs in zip(*ds.values([f"{FIELD}.detections.id", f"{FIELD}.detections.bounding_box"])):
        boxes.update(zip(lids or [], bbs or []))
    load0 = _load()
    rows, decided = [], {}
    for _ in range(decisions):
        before = int(re.search(r"([\d,]+) of", progress.inner_text()).group(1).replace(",", ""))
        first = queue_stats.next_yellow(ds, FIELD, 1)[0]
        action = "accept" if kinds[first["label_id"]] == "ok" else "reject"
        t0 = time.perf_counter()
        upcoming.locator("tbody tr").first.locator("td").first.click()
        expect(modal).to_be_visible(timeout=TIMEOUT)
        expect(modal).to_contain_text(first["sample_id"], timeout=TIMEOUT)
        t_open = time.perf_counter() - t0
        page.wait_for_timeout(1500)  # the image draws before its labels take clicks
        canvas = modal.locator("canvas").first
        c = canvas.bounding_box()
        side = min(c["width"], c["height"])
        x0, y0 = c["x"] + (c["width"] - side) / 2, c["y"] + (c["height"] - side) / 2
        box = boxes[first["label_id"]]
        t1 = time.perf_counter()
        page.mouse.click(x0 + (box[0] + box[2] / 2) * side, y0 + (box[1] + box[3] / 2) * side)
        page.mouse.click(8, 500)  # outside: closes the modal, keeps the selection
        expect(modal).to_have_count(0, timeout=TIMEOUT)
        verb = "Accept" if action == "accept" else "Reject"
        button = page.get_by_role("button", name=re.compile(rf"{verb} selected \(1 label"))
        expect(button).to_be_enabled(timeout=TIMEOUT)
        t_select = time.perf_counter() - t1
        t2 = time.perf_counter()
        button.click()
        expect(progress).to_contain_text(f"{before + 1:,} of", timeout=TIMEOUT)
        t_decide = time.perf_counter() - t2
        rows.append(dict(open_s=t_open, select_s=t_select, decide_s=t_decide,
                         total_s=time.perf_counter() - t0))
        decided[first["label_id"]] = action
    return dict(rows=rows, decided=decided, load_before=load0, load_after=_load())


def check_decisions(ds, decided: dict, user: str | None) -> int:
    """How many decisions are stored as made, logged (raises if any is not)."""
    from stoplight.plugins.common import audit

    ids, review, by = ds.values([f"{FIELD}.detections.{a}" for a in ("id", "review", "reviewed_by")], unwind=True)
    stored = {i: (r, b) for i, r, b in zip(ids, review, by)}
    logged = {e["label_id"] for e in audit.read_log(ds, label_ids=list(decided))}
    for lid, action in decided.items():
        want = "accepted" if action == "accept" else "rejected"
        if stored[lid][0] != want or (user and stored[lid][1] != user) or lid not in logged:
            raise AssertionError(f"label {lid}: stored {stored[lid]}, logged {lid in logged}; expected {want}")
    return len(decided)


def _ms(v) -> str:
    return f"{1000 * v:,.0f} ms"


def report(surface: dict, old: dict, meta: dict) -> str:
    inside, outside = sorted(surface["inside_s"]), sorted(surface["outside_s"])
    q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))]  # noqa: E731
    n = len(surface["outside_s"])  # key presses (a declined group is one)
    decisions = len(surface["decided"])
    apm_screen = 60 * decisions / surface["screen_s"]
    apm_stored = 60 * decisions / surface["stored_s"]
    rows = old["rows"]
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    old_total = med("total_s")
    old_pm = 60 * len(rows) / sum(r["total_s"] for r in rows)
    lines = [
        f"machine: {meta['machine']}; load average {meta['load']}",
        "",
        "| flow | key/click to next question on screen (median) | p90 | max | decisions per minute (scripted, no judging) |",
        "|---|---|---|---|---|",
        f"| review surface (in page: keydown to the frame after the crop is drawn), {n} key presses, "
        f"{decisions} decisions ({surface['groups_declined']} similar-label groups declined) | "
        f"**{_ms(statistics.median(inside))}** | {_ms(q(inside, 0.9))} | {_ms(inside[-1])} | "
        f"**{apm_screen:,.0f}** on screen, {apm_stored:,.0f} stored |",
        f"| review surface (from the script: key sent to question seen) | {_ms(statistics.median(outside))} | "
        f"{_ms(q(outside, 0.9))} | {_ms(outside[-1])} | |",
        f"| grid + verification panel, {len(rows)} decisions | {old_total:,.1f} s per decision "
        f"(open {med('open_s'):,.1f} s + select {med('select_s'):,.1f} s + refresh {med('decide_s'):,.1f} s; "
        f"+1.5 s image pause) | | | {old_pm:,.1f} |",
        "",
        f"surface vs grid + panel: {old_total / statistics.median(inside):,.0f}x less time from an answer to the next "
        f"question; {apm_stored / old_pm:,.0f}x the decisions per minute (stored)",
        f"target: median key press to next question <= 0.5 s: "
        f"{'met' if statistics.median(inside) <= 0.5 else 'NOT met'}",
        f"load average: surface {surface['load_before']} -> {surface['load_after']}, "
        f"grid + panel {old['load_before']} -> {old['load_after']}",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--answers", type=int, default=60, help="answers on the review surface")
    ap.add_argument("--old", type=int, default=5, help="decisions in the grid + panel flow")
    ap.add_argument("--copies", type=int, default=1, help="digits dataset size (copies of the pasted half)")
    ap.add_argument("--chromium", default=os.environ.get("STOPLIGHT_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--json", help="also write the measurements here")
    ap.add_argument("--screenshot", help="save the surface after 12 answers here (PNG, for the README)")
    args = ap.parse_args(argv)

    import screenshots  # the private mongod and plugin dir of the screenshot script

    root = Path(tempfile.mkdtemp(prefix="stoplight-bench-review-"))
    mongod, uri = screenshots.start_private_mongod(root)
    app = None
    try:
        screenshots.isolated_environment(root, uri)
        os.environ["FIFTYONE_DATABASE_NAME"] = f"stoplight-bench-review-{uuid.uuid4().hex[:6]}"
        from stoplight_import import import_stoplight

        import_stoplight()
        from playwright.sync_api import sync_playwright

        print(f"[bench] building the digits example (copies={args.copies}); load {_load()}", flush=True)
        ds, kinds = prepare(args.copies)
        app, url = start_app(root)
        meta = dict(machine=f"{platform.machine()}, {os.cpu_count()} CPU cores", load=_load(),
                    labels=len(kinds), answers=args.answers, old=args.old)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1920, "height": 1080})
            context.set_default_timeout(TIMEOUT)
            context.add_init_script("window.IS_PLAYWRIGHT = true;"
                                    "try { localStorage.setItem('fiftyone-enterprise-tooltip-seen', 'true') } catch (e) {}")
            page = context.new_page()
            print(f"[bench] review surface: {args.answers} answers; load {_load()}", flush=True)
            shot = None
            if args.screenshot:
                def shot(pg):
                    print(f"[bench] screenshot {args.screenshot} ({screenshots.save_png(pg, Path(args.screenshot)) // 1024} KB)")
            surface = run_surface(page, url, kinds, args.answers, shot)
            check_decisions(ds, surface["decided"], REVIEWER)
            print(f"[bench] grid + verification panel: {args.old} decisions; load {_load()}", flush=True)
            old = run_old_flow(page, url, ds, kinds, args.old)
            check_decisions(ds, old["decided"], None)
            browser.close()
        print(report(surface, old, meta))
        if args.json:
            Path(args.json).write_text(json.dumps(dict(meta=meta, surface=surface, old=old), indent=1, default=str))
    finally:
        if app is not None:
            app.terminate()
            app.wait(30)
        mongod.terminate()
        mongod.wait(30)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
