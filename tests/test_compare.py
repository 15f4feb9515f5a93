"""`python -m recipes.compare`: the table of differing keys and metrics, and the static HTML page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from peftzoo_tools.compare.cli import main as compare
from peftzoo_tools.sweep.cli import main as sweep_main
from tests.conftest import tiny_recipe

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A real sweep of two trials (lr) with one seed each, logging every step."""
    root = tmp_path_factory.mktemp("compare")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(**{"data.n": 64, "train.log_every": 1})))
    assert sweep_main([str(recipe), "train.lr=[1e-3,1e-2]", "--output-dir", str(root / "sweeps"), "--quiet"]) == 0
    (sweep,) = (root / "sweeps").iterdir()
    return sweep


def test_table_shows_the_differing_keys_and_the_chosen_metrics(sweep_dir, capsys):
    assert compare([str(sweep_dir.parent), "--metrics", "val/eeg_to_video/R@1,val/loss"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = lines[0].split()
    assert header[:3] == ["run", "train.lr", "status"]  # train.cache_dir etc. agree, seed agrees: not shown
    assert "final" in header and "val/loss" in header and "train.cache_dir" not in lines[0]
    assert len(lines) == 3 and {line.split()[1] for line in lines[1:]} == {"0.001", "0.01"}
    # a run directory given directly and the sweep folder give the same two runs once each
    run = next((sweep_dir / "trial-000").glob("tiny_test-*"))
    assert compare([str(run), str(sweep_dir), "--metrics", "val/loss"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_html_page_references_only_valid_pngs(sweep_dir, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "page"
    assert compare([str(sweep_dir), "--html", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"html: {out / 'index.html'}"
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    # per run: R@1, losses, lr, logit scale; for the sweep: R@1 against lr, and every trial's curve
    assert len(sources) == 2 * 4 + 2 and len(set(sources)) == len(sources)
    assert sum("against" in s for s in sources) == 1
    for source in sources:
        path = out / source
        assert path.read_bytes()[:8] == PNG_MAGIC, source
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG" and image.width > 100 and image.height > 100
    for run in sweep_dir.glob("trial-*/tiny_test-*"):
        assert f"<h2>{run.name}</h2>" in page
    assert re.findall(r'<section id="([^"]+)"><h2>', page) == ["run-000", "run-001"]
    assert sorted(re.findall(r'<a href="#([^"]+)">', page)) == ["run-000", "run-001"]
    assert "train.lr" in page and "val/eeg_to_video/R@1" in page
    # a second write replaces the page as a whole
    assert compare([str(sweep_dir), "--html", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "plots"]


def test_page_opens_in_headless_chromium(sweep_dir, tmp_path, capsys):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium) to open the page headless")
    out = tmp_path / "page"
    assert compare([str(sweep_dir), "--html", str(out)]) == 0
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            (out / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        image.load()
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert (
            image.size == (1200, 1600) and colors is not None and len(colors) > 50
        )  # a rendered page, not a blank one


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{missing}"], "does not exist"),
        (["{empty}"], "holds no run directory"),
        (["{sweep}", "--metrics", "val/R@1"], "--metrics: val/R@1 not logged by any of these runs"),
        (
            ["{sweep}", "--metrics", "train/loss"],
            "train/loss is logged per step or epoch of training, while compare ranks the evaluation's",
        ),
        (["{sweep}", "--html", "{occupied}"], "exists and is not a comparison page"),
        (["{sweep}", "--html", "{occupied}/notes.txt/page"], "is a file, not a directory"),
    ],
)
def test_mistakes_exit_2_with_one_message(sweep_dir, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    names = {
        "missing": tmp_path / "nope",
        "empty": tmp_path / "empty",
        "sweep": sweep_dir,
        "occupied": tmp_path / "occupied",
    }
    assert compare([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert (tmp_path / "occupied" / "notes.txt").read_text() == "mine"


def test_runs_without_metrics_same_names_and_html_characters(sweep_dir, tmp_path, capsys):
    """A run still before its first evaluation, two runs of the same directory name in two folders,
    and a name with spaces, unicode and HTML characters: one row each, told apart, escaped, linked."""
    import json

    runs = sorted(sweep_dir.glob("trial-*/tiny_test-*"))
    folder = tmp_path / "runs"
    shutil.copytree(runs[0], folder / "a" / "same")
    shutil.copytree(runs[1], folder / "b" / "same")
    odd = folder / "run <b>&é 1"
    shutil.copytree(runs[0], odd)
    (odd / "metrics.jsonl").unlink()
    info = json.loads((odd / "run.json").read_text())
    info.pop("final_metrics", None)
    (odd / "run.json").write_text(json.dumps({**info, "status": "running"}))

    # the running run alone: the default metrics show "-" rather than refusing the comparison
    assert compare([str(odd)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("run <b>&é 1  running") and lines[1].split()[-1] == "-"

    out = tmp_path / "page"
    assert compare([str(folder), "--html", str(out)]) == 0
    table = capsys.readouterr().out
    assert "a/same " in table and "b/same " in table and "run <b>&é 1" in table
    page = (out / "index.html").read_text()
    assert "<h2>run &lt;b&gt;&amp;é 1</h2>" in page and "<b>&" not in page
    ids = re.findall(r'<section id="([^"]+)">', page)
    assert len(ids) == 3 and len(set(ids)) == 3 and all(re.fullmatch(r"run-\d{3}", i) for i in ids)
    assert sorted(re.findall(r'<a href="#([^"]+)">', page)) == sorted(ids)


def test_an_occupied_html_folder_is_refused_before_the_table_is_printed(sweep_dir, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert compare([str(sweep_dir), "--html", str(tmp_path / "mine")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("error:") == 1


def test_a_copied_sweep_shows_its_own_runs_and_a_running_trial(sweep_dir, tmp_path, capsys):
    """sweep.json records absolute run paths: a copy (rsync from a cluster) must read the runs inside
    it, never the original's, and a trial still running (sweep.json names no run yet) is shown."""
    import json

    copy = tmp_path / "copied"
    shutil.copytree(sweep_dir, copy)
    shutil.rmtree(copy / "trial-001")  # not copied: must not be read from the original
    data = json.loads((copy / "sweep.json").read_text())
    data["trials"][0].update(status="running", run=None)
    (copy / "sweep.json").write_text(json.dumps(data))
    assert compare([str(copy), "--metrics", "val/loss"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    (run,) = (copy / "trial-000").glob("tiny_test-*")
    assert len(rows) == 1 and rows[0].startswith(run.name)
