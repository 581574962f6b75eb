"""Regenerates the README walkthrough's screenshots from the real App.

Runs ``walkthrough.py --digits`` into a private MongoDB, computes the label
map, starts a real FiftyOne App server and drives it with headless
Chromium (Playwright), saving PNGs under ``docs/walkthrough/``:

- ``01-grid.png``: the dataset grid with the auto-labels
- ``02-verification-queues.png``: the verification_queues panel
- ``03-label-map.png``: the label_map panel
- ``04-reviewed-label.png``: a label the (simulated) reviewer accepted,
  its review attributes shown in the sample modal

    python examples/screenshots.py                  # needs playwright and /usr/bin/chromium
    python examples/screenshots.py --out /tmp/shots --chromium /path/to/chromium
    python examples/screenshots.py --quickstart     # only docs/quickstart.png (README, "What you will see")

``--quickstart`` runs ``quickstart.py --no-app`` and opens the App with
the command it prints, as the README says, then saves what it shows.

Nothing touches your own database: the script starts its own ``mongod``
(the one FiftyOne installs) in a temporary directory and removes it at the
end. Every PNG is reduced to a 256-colour palette to stay small.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from open_app import show_queues
from stoplight_import import REPO

FIELD = "autolabels"
NAME = "stoplight-walkthrough-digits"
TIMEOUT = 90_000
MAX_BYTES = 290_000
QUICKSTART_PNG = REPO / "docs" / "quickstart.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (code {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f} s")


def _wait_app(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Waits until the App server answers ``GET /fiftyone``."""
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the FiftyOne App server exited early (code {proc.returncode})")
        try:
            with urllib.request.urlopen(f"{url}/fiftyone", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the FiftyOne App server did not answer on {url} within {timeout:.0f} s")


def start_private_mongod(root: Path) -> tuple[subprocess.Popen, str]:
    """A ``mongod`` on 127.0.0.1 with its data under ``root``."""
    spec = importlib.util.find_spec("fiftyone")
    mongod = Path(spec.origin).parent / "db" / "bin" / "mongod"
    mongod = str(mongod) if mongod.exists() else shutil.which("mongod")
    if not mongod:
        raise SystemExit("No mongod found (FiftyOne's or on PATH); run `bash .ci/setup` first")
    (root / "db").mkdir(parents=True)
    port = _free_port()
    proc = subprocess.Popen([mongod, "--dbpath", str(root / "db"), "--bind_ip", "127.0.0.1",
                             "--port", str(port), "--nounixsocket"],
                            stdout=open(root / "mongod.log", "w"), stderr=subprocess.STDOUT)
    _wait_port(port, proc, "mongod")
    return proc, f"mongodb://127.0.0.1:{port}"


def isolated_environment(root: Path, database_uri: str) -> None:
    """Points FiftyOne (this process and the App server) at the private
    database and a plugins directory holding only this repository; must run
    before fiftyone is imported."""
    plugins = root / "plugins"
    (plugins / "stoplight").mkdir(parents=True)
    (plugins / "stoplight" / "autolabel").symlink_to(REPO, target_is_directory=True)
    os.environ.update(
        FIFTYONE_DATABASE_URI=database_uri,
        FIFTYONE_DATABASE_NAME=f"stoplight-screenshots-{uuid.uuid4().hex[:6]}",
        FIFTYONE_DATABASE_VALIDATION="false",
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_PLUGINS_DIR=str(plugins),
    )


def prepare_dataset(review: int) -> None:
    """The walkthrough on the digits (every step through the operators),
    plus the label map and a saved view of the reviewed labels' samples."""
    import walkthrough

    rc = walkthrough.main(["--digits", "--name", NAME, "--replace", "--review", str(review)])
    if rc != 0:
        raise SystemExit(f"walkthrough.py --digits failed with exit code {rc}")
    import fiftyone as fo
    from fiftyone import ViewField as F
    from stoplight.plugins.panels.label_map import compute_label_map

    ds = fo.load_dataset(NAME)
    compute_label_map(ds, FIELD, method="pca")  # what the panel's "Compute map" button runs
    show_queues(ds, FIELD)  # boxes coloured by their queue, as in the panels
    # the long vectors would fill the label tooltips before the review attributes
    auto = ds.select_fields(FIELD).exclude_fields([f"{FIELD}.detections.embedding",
                                                   f"{FIELD}.detections.class_scores"])
    ds.save_view("autolabels", auto)
    accepted = F(f"{FIELD}.detections").filter(F("review") == "accepted").length() > 0
    ds.save_view("reviewed", auto.match(accepted))


def save_png(page, path: Path, colors: int = 128) -> int:
    """Screenshot of the viewport as a palette PNG under :data:`MAX_BYTES`
    (scaled down in steps when needed: the digits' pixel noise compresses
    badly); returns its size in bytes."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot(full_page=False, timeout=60_000))).convert("RGB")
    for scale in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5):
        size = (round(image.width * scale), round(image.height * scale))
        small = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
        small.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True)
        if path.stat().st_size <= MAX_BYTES:
            break
    return path.stat().st_size


def take_screenshots(url: str, out: Path, chromium: str) -> list[Path]:
    """Drives the App at ``url`` and saves the four screenshots."""
    import fiftyone as fo
    from playwright.sync_api import expect, sync_playwright

    ds = fo.load_dataset(NAME)
    shots = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1600, "height": 950})
        context.set_default_timeout(TIMEOUT)
        # FiftyOne's own Playwright flag: no popovers or analytics in the shots
        context.add_init_script("window.IS_PLAYWRIGHT = true;"
                                "try { localStorage.setItem('fiftyone-enterprise-tooltip-seen', 'true') } catch (e) {}")
        page = context.new_page()

        def shot(name: str) -> None:
            path = out / f"{name}.png"
            size = save_png(page, path)
            print(f"  {path} ({size / 1024:.0f} KB)")
            shots.append(path)

        grid = '[data-cy="fo-grid"] [data-cy="looker"]'
        def show_grid(view: str) -> None:
            page.goto(f"{url}/datasets/{NAME}?view={view}")
            # panels opened earlier stay open (the App remembers its spaces)
            samples_tab = page.get_by_text("Samples", exact=True).first
            samples_tab.wait_for(timeout=TIMEOUT)
            samples_tab.click()
            page.wait_for_selector(grid, timeout=TIMEOUT)

        show_grid("autolabels")
        page.wait_for_timeout(3000)  # thumbnails and their labels
        shot("01-grid")

        def open_panel(name: str) -> None:
            page.locator('[data-cy="new-panel-btn"]').first.click()
            page.locator(f'[data-cy="new-panel-option-{name}"]').click()

        open_panel("verification_queues")
        expect(page.locator("table").filter(has_text="Expected precision")).to_be_visible(timeout=TIMEOUT)
        expect(page.locator(".js-plotly-plot .barlayer")).to_have_count(1, timeout=TIMEOUT)
        page.wait_for_timeout(2000)
        shot("02-verification-queues")

        open_panel("label_map")
        n_labels = ds.count(f"{FIELD}.detections")
        expect(page.get_by_text(f"PCA map of {n_labels:,} labels", exact=False)).to_be_visible(timeout=TIMEOUT)
        page.wait_for_timeout(2000)
        shot("03-label-map")

        # a reviewed label: the saved view of samples with an accepted label,
        # the first one opened, the pointer on its accepted label
        show_grid("reviewed")
        view = ds.load_saved_view("reviewed")
        sample = view.first()
        det = next(d for d in sample[FIELD].detections if d.has_field("review") and d.review == "accepted")
        page.locator(grid).first.click()
        modal = page.locator('[data-cy="modal-content"]')
        expect(modal).to_be_visible(timeout=TIMEOUT)
        page.wait_for_timeout(2500)  # the looker draws the image before labels react
        canvas = modal.locator("canvas").first.bounding_box()
        side = min(canvas["width"], canvas["height"])  # square digit canvases, fitted and centred
        x0 = canvas["x"] + (canvas["width"] - side) / 2
        y0 = canvas["y"] + (canvas["height"] - side) / 2
        x, y, w, h = det.bounding_box
        page.mouse.move(x0 + (x + w / 2) * side, y0 + (y + h / 2) * side, steps=5)
        page.wait_for_timeout(1500)
        shot("04-reviewed-label")
        browser.close()
    return shots


def quickstart_screenshot(root: Path, chromium: str) -> int:
    """The README's first command (without the setup, ``--no-app``), then the
    App opened by the command it prints; saves :data:`QUICKSTART_PNG`."""
    import shlex

    import quickstart
    import walkthrough
    from playwright.sync_api import expect, sync_playwright

    os.environ["FIFTYONE_DEFAULT_DATASET_DIR"] = str(root / "datasets")
    name = quickstart.DEFAULT_NAME
    rc = quickstart.main(["--offline", "--no-app", "--name", name])
    if rc != 0:
        raise SystemExit(f"quickstart.py failed with exit code {rc}")
    import fiftyone as fo

    command = shlex.split(walkthrough.open_app_command(name))  # what the quickstart printed
    port = _free_port()
    env = dict(os.environ, FIFTYONE_DEFAULT_APP_PORT=str(port),
               BROWSER="true")  # no browser tab: Playwright's Chromium looks instead
    app = subprocess.Popen(command, stdout=open(root / "app.log", "w"), stderr=subprocess.STDOUT, cwd=str(REPO),
                           env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_app(url, app)
        n = len(fo.load_dataset(name))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1600, "height": 950})
            context.set_default_timeout(TIMEOUT)
            context.add_init_script("window.IS_PLAYWRIGHT = true;"
                                    "try { localStorage.setItem('fiftyone-enterprise-tooltip-seen', 'true') } "
                                    "catch (e) {}")
            page = context.new_page()
            page.goto(url)
            expect(page.locator('[data-cy="entry-counts"]')).to_contain_text(f"{n:,} samples", timeout=TIMEOUT)
            expect(page.locator("table").filter(has_text="Expected precision")).to_be_visible(timeout=TIMEOUT)
            expect(page.locator(".js-plotly-plot .barlayer")).to_have_count(1, timeout=TIMEOUT)
            page.wait_for_selector('[data-cy="fo-grid"] [data-cy="looker"]', timeout=TIMEOUT)
            page.wait_for_timeout(5000)  # thumbnails and their boxes
            QUICKSTART_PNG.parent.mkdir(parents=True, exist_ok=True)
            size = save_png(page, QUICKSTART_PNG)
            print(f"  {QUICKSTART_PNG} ({size / 1024:.0f} KB)")
            browser.close()
    finally:
        import signal

        os.killpg(app.pid, signal.SIGTERM)
        app.wait(30)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "walkthrough"))
    parser.add_argument("--chromium", default=os.environ.get("STOPLIGHT_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--review", type=int, default=20, help="labels the simulated reviewer decides")
    parser.add_argument("--quickstart", action="store_true", help=f"only {QUICKSTART_PNG.relative_to(REPO)}")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    root = Path(tempfile.mkdtemp(prefix="stoplight-screenshots-"))
    mongod = server = None
    try:
        mongod, uri = start_private_mongod(root)
        isolated_environment(root, uri)
        if args.quickstart:
            return quickstart_screenshot(root, args.chromium)
        prepare_dataset(args.review)
        port = _free_port()
        # cwd: the scratch dir, which holds the server's log
        server = subprocess.Popen(
            [sys.executable, "-m", "fiftyone.server.main", "--address", "127.0.0.1", "--port", str(port)],
            stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT, cwd=str(root), env=dict(os.environ),
        )
        _wait_app(f"http://127.0.0.1:{port}", server)
        print("\nScreenshots:")
        take_screenshots(f"http://127.0.0.1:{port}", out, args.chromium)
        return 0
    finally:
        for proc in (server, mongod):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
