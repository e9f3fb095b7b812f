"""The whole workflow on the small program of ``.test/config.yaml``, for real (no stubs).

One run (about 45 s on 2 cores) is shared by every test here: the report and its previews,
opened in headless Chromium, and which jobs go stale when an input, a parameter or a
reference file changes (dry runs against that finished run; every file touched is put
back). All slow: ``python -m pytest -m slow tests/workflow/test_small_program.py``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.workflow.test_snakefile import ROOT, jobs_of, snakemake

pytestmark = pytest.mark.slow

TEST_CONFIG = ROOT / ".test" / "config.yaml"
CHROMIUM_MISSING = "headless Chromium not found: install it with `apt-get install -y chromium`"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A working directory where `snakemake --configfile .test/config.yaml` completed."""
    pytest.importorskip("webbcal.pipeline.image3")
    workdir = tmp_path_factory.mktemp("small_program")
    result = snakemake(workdir, "--cores", "2", "--configfile", str(TEST_CONFIG), stub=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def dry_run(workdir: Path, *args: str) -> dict[str, int]:
    result = snakemake(workdir, "-n", "--cores", "2", *args, stub=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return jobs_of(result.stdout)


def with_changes(workdir: Path, **changes) -> str:
    """A config file: .test/config.yaml plus ``changes`` (one level of stage merging)."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config.update(changes)
    path = workdir / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


class touched:
    """Make a file newer than everything made from it, and put its time back after."""

    def __init__(self, path: Path):
        self.path, self.stat = path, path.stat()

    def __enter__(self):
        os.utime(self.path, (self.stat.st_atime, self.stat.st_mtime + 3600))

    def __exit__(self, *exc):
        os.utime(self.path, (self.stat.st_atime, self.stat.st_mtime))


def exposures_of(workdir: Path) -> list[str]:
    uncal = sorted((workdir / "results" / "simulation" / "uncal").glob("*_uncal.fits"))
    return [p.name.removesuffix("_uncal.fits") for p in uncal]


# ------------------------------------------------------------------ staleness


def test_a_second_run_does_nothing(finished_run):
    assert dry_run(finished_run, "--configfile", str(TEST_CONFIG)) == {}


def test_touching_one_uncal_reruns_its_chain_and_its_mosaic_only(finished_run):
    first = exposures_of(finished_run)[0]
    uncal = finished_run / "results" / "simulation" / "uncal" / f"{first}_uncal.fits"
    with touched(uncal):
        result = snakemake(finished_run, "-n", "--cores", "2", "--configfile", str(TEST_CONFIG), stub=False)
    assert jobs_of(result.stdout) == {"detector1": 1, "image2": 1, "image3": 1, "source_catalog": 1,
                                      "preview_rate": 1, "preview_cal": 1, "preview_mosaic": 1, "all": 1}
    assert f"wildcards: exposure={first}" in result.stdout
    for other in exposures_of(finished_run)[1:]:
        assert f"exposure={other}" not in result.stdout
    assert dry_run(finished_run, "--configfile", str(TEST_CONFIG)) == {}  # time put back


def test_a_source_catalog_parameter_reruns_only_what_makes_and_reads_catalogs(finished_run):
    changed = with_changes(finished_run, image3={"steps": {"source_catalog": {"snr_threshold": 5.0}}})
    # The catalog is its own job (the mosaic stays); the run page lists parameters.
    assert dry_run(finished_run, "--configfile", changed) == {"source_catalog": 1, "preview_mosaic": 1,
                                                               "run_info": 1, "all": 1}


def test_a_ramp_fit_parameter_reruns_detector1_and_everything_after_it(finished_run):
    n = len(exposures_of(finished_run))
    changed = with_changes(finished_run, detector1={"steps": {"ramp_fit": {"suppress_one_group": False}}})
    assert dry_run(finished_run, "--configfile", changed) == {
        "detector1": n, "image2": n, "image3": 1, "source_catalog": 1, "preview_rate": n, "preview_cal": n,
        "preview_mosaic": 1, "run_info": 1, "all": 1}


def test_replacing_the_flat_reruns_image2_and_later_only(finished_run):
    refs = finished_run / "results" / "simulation" / "refs"
    flats = sorted(refs.glob("*_flat.fits"))
    assert len(flats) == 1, flats
    n = len(exposures_of(finished_run))
    with touched(flats[0]):
        jobs = dry_run(finished_run, "--configfile", str(TEST_CONFIG))
    assert jobs == {"image2": n, "image3": 1, "source_catalog": 1, "preview_cal": n, "preview_mosaic": 1, "all": 1}


def test_with_the_calibrated_ramp_kept_jump_and_ramp_fit_changes_refit_from_it(tmp_path):
    """save_calibrated_ramp: the ramp job (detector corrections) and the fit job (jump on);
    a jump or ramp_fit change reruns the fit and what follows, not the ramp job."""
    config = with_changes(tmp_path, detector1={"save_calibrated_ramp": True})
    result = snakemake(tmp_path, "--cores", "2", "--configfile", config, stub=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    n = len(exposures_of(tmp_path))
    assert len(list((tmp_path / "results").glob("*_ramp.fits"))) == n
    for step, change in (("jump", {"rejection_threshold": 5.0}), ("ramp_fit", {"suppress_one_group": False})):
        changed = with_changes(tmp_path, detector1={"save_calibrated_ramp": True, "steps": {step: change}})
        jobs = dry_run(tmp_path, "--configfile", changed)
        assert "detector1_ramp" not in jobs and jobs["detector1"] == n, (step, jobs)


# ------------------------------------------------------------------ report


def test_a_preview_job_is_cheap(finished_run):
    """The command a preview job runs, interpreter start-up and imports included (the
    drawing alone is timed in tests/preview: < 1 s for a full frame)."""
    rate = next((finished_run / "results").glob("*_rate.fits"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "webbcal.commands.preview", str(rate), "-o",
                    str(finished_run / "timed.png")], check=True, env=env, timeout=60)
    assert time.perf_counter() - start < 5.0  # ~1.7 s on an idle machine


def report_results(html: str) -> dict:
    """The `results` object the Snakemake report embeds (path -> entry with data_uri)."""
    start = html.index("results = {") + len("results = ")
    return json.JSONDecoder().raw_decode(html[start:])[0]


def test_report_holds_every_preview_and_the_run_page(finished_run):
    result = snakemake(finished_run, "--configfile", str(TEST_CONFIG), "--report", "report.html", stub=False)
    assert result.returncode == 0, result.stderr[-3000:]
    results = report_results((finished_run / "report.html").read_text())
    pngs = sorted(Path(p).name for p, entry in results.items() if entry["mime_type"] == "image/png")
    made = sorted(p.name for p in (finished_run / "results").glob("*.png"))
    assert pngs == made and len(made) == 2 * len(exposures_of(finished_run)) + 1  # rate, cal; mosaic
    assert any(name.startswith("jw09999-") and name.endswith("_i2d.png") for name in pngs)
    run_page = next(entry for p, entry in results.items() if p.endswith("run_info.html"))
    page = base64.b64decode(run_page["data_uri"].split("base64,", 1)[1]).decode()
    assert "rejection_threshold" in page and "snakemake" in page and "numpy" in page
    for entry in results.values():
        if entry["mime_type"] == "image/png":
            png = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
            assert png[:8] == b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip(CHROMIUM_MISSING)


# Appended to a copy of the report: once the report's app has started, show every PNG result
# the way its own "view" button does (app.setView), wait for each to load, and write what
# the browser measured into the page, which --dump-dom then prints.
RENDER_CHECK = """
<script>
const shownImage = (uri) => [...document.querySelectorAll("img")].find(img => img.src === uri);
async function waitFor(test, ms) {
  for (let t = 0; t < ms && !test(); t += 50) await new Promise(r => setTimeout(r, 50));
  return test();
}
window.addEventListener("load", () => setTimeout(async () => {
  const measured = [];
  for (const [path, entry] of Object.entries(results)) {
    if (entry.mime_type !== "image/png") continue;
    app.setView({content: "img", contentPath: entry.data_uri, resultPath: path});
    await waitFor(() => { const img = shownImage(entry.data_uri); return img && img.complete; }, 5000);
    const img = shownImage(entry.data_uri);
    measured.push({path: path, shown: !!img, width: img ? img.naturalWidth : 0,
                   height: img ? img.naturalHeight : 0});
  }
  const out = document.createElement("pre");
  out.id = "render-check";
  out.textContent = JSON.stringify(measured);
  document.body.appendChild(out);
}, 500));
</script>
"""


def test_report_renders_its_previews_in_headless_chromium(finished_run, tmp_path):
    browser = chromium()
    report = finished_run / "report.html"
    if not report.exists():
        result = snakemake(finished_run, "--configfile", str(TEST_CONFIG), "--report", "report.html", stub=False)
        assert result.returncode == 0, result.stderr[-3000:]
    checked = tmp_path / "report_checked.html"
    head, tail = report.read_text().rsplit("</body>", 1)  # the last: report JS holds others
    checked.write_text(head + RENDER_CHECK + "</body>" + tail)
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                             "--virtual-time-budget=20000", "--dump-dom", checked.as_uri()],
                            capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert "1. Detector1" in dom and "4. Image3" in dom  # the report's menu was built by its JS
    found = re.search(r'<pre id="render-check">(.*?)</pre>', dom, re.S)
    assert found, "the render check did not run: " + result.stderr[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"'))
    made = sorted((finished_run / "results").glob("*.png"))
    assert len(measured) == len(made) > 0
    for image in measured:
        assert image["shown"] and image["width"] >= 600 and image["height"] >= 500, image

    # and what the browser paints is a picture, not a blank page
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900",
                    f"--screenshot={shot}", "--virtual-time-budget=5000", report.as_uri()],
                   capture_output=True, timeout=120)
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.std() > 0.05
