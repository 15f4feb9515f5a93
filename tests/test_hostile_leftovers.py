"""Audit cases left over (issue 22): each once a traceback, a silent acceptance or a misleading message.

- a Video Swin whose depths sum to 1 (ZeroDivisionError inside torchvision);
- a directory given as the recipe ("neither a file nor a bundled recipe");
- `recipes.retrieve` with a gallery holding NaN (ranked silently);
- SEED-DV labels out of range (accepted), and arrays that are pickles or text (ValueError tracebacks).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

import registry
from registry.errors import UserError
from tests.conftest import run_dir_in, tiny_recipe


def one_error_line(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_video_swin_of_one_block_is_refused_by_its_config():
    spec = {
        "name": "video_swin",
        "embed_dim": 8,
        "depths": [1],
        "num_heads": [1],
        "window_size": [2, 4, 4],
        "frames": 4,
        "size": 32,
    }
    with pytest.raises(UserError, match=r"depths \[1\] make one block in all; Video Swin needs at least two"):
        registry.build("encoders", spec)
    encoder = registry.build("encoders", {**spec, "depths": [2]})  # two blocks in one stage: builds
    assert len(list(encoder.blocks)) == 2


def test_a_directory_given_as_the_recipe_is_called_a_directory(tmp_path, capsys):
    from peftzoo_tools.run import main as run_main

    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "a.yaml").write_text("name: a\n")
    err = one_error_line(capsys, run_main([str(folder)]))
    assert "is a directory, not a recipe file" in err and "a.yaml" in err and "neither a file" not in err
    (folder / "recipe.yaml").write_text("name: a\n")  # looks like a run directory
    err = one_error_line(capsys, run_main([str(folder)]))
    assert "--resume" in err and str(folder / "recipe.yaml") in err


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from peftzoo_tools.run import main as run_main

    root = tmp_path_factory.mktemp("leftovers")
    (root / "r.yaml").write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 1, "data.n": 64})))
    assert run_main([str(root / "r.yaml"), "--output-dir", str(root / "runs"), "--quiet"]) == 0
    return run_dir_in(root / "runs")


def test_a_gallery_holding_nan_is_refused_with_the_row_count(run, tmp_path, capsys):
    from peftzoo_tools.retrieve import main as retrieve_main

    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((10, 32)).astype(np.float32)
    gallery[[2, 7]] = np.nan
    np.savez(tmp_path / "g.npz", video=gallery, index=np.arange(10))
    np.savez(tmp_path / "q.npz", eeg=rng.standard_normal((3, 32)).astype(np.float32), index=np.arange(3))
    argv = [str(run), "--eeg", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "-q"]
    err = one_error_line(capsys, retrieve_main(argv))
    assert "holds NaN or inf in 2 of 10 rows ([2, 7])" in err and "g.npz" in err
    gallery[[2, 7]] = 0.5
    np.savez(tmp_path / "g.npz", video=gallery, index=np.arange(10))
    assert retrieve_main(argv) == 0


# -- SEED-DV ---------------------------------------------------------------------------------------
class Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def seed_dv_layout(root: Path, concepts: int = 2) -> dict:
    """The SEED-DV folders with a correct label table and EEG, and empty videos (never decoded here:
    every case below is refused before that)."""
    from peftzoo_data import seed_dv

    for folder in ("EEG", "Video", "meta_info"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    np.save(root / "meta_info" / "All_video_label.npy", np.stack([np.arange(concepts) + 1] * 7))
    np.save(root / "EEG" / "sub1.npy", np.zeros((7, 62, concepts * 13 * 200), np.float32))
    for name in seed_dv.VIDEO_NAMES:
        (root / "Video" / name).write_bytes(b"")
    return {"name": "seed_dv", "root": str(root), "concepts_per_block": concepts, "cache_dir": str(root / "cache")}


@pytest.mark.parametrize(
    "table, fragment",
    [
        (np.stack([[1, 41]] * 7), "concept ids [41] outside 1..40"),
        (np.stack([[0, 57]] * 7), "concept ids [57] outside 1..40"),
        (np.stack([[1, -3]] * 7), "concept ids [-3] outside 1..40"),
        (np.stack([[1.0, 2.5]] * 7), "float64 values; concept ids are integers"),
    ],
)
def test_seed_dv_labels_out_of_range_are_refused(tmp_path, table, fragment):
    spec = seed_dv_layout(tmp_path / "SEED-DV")
    np.save(tmp_path / "SEED-DV" / "meta_info" / "All_video_label.npy", table)
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        registry.build("datasets", spec)


@pytest.mark.parametrize("file", ["EEG/sub1.npy", "meta_info/All_video_label.npy"])
@pytest.mark.parametrize("content", ["pickle", "object_array", "text"])
def test_seed_dv_arrays_that_are_pickles_or_text_are_one_message_and_never_unpickled(tmp_path, file, content):
    spec = seed_dv_layout(tmp_path / "SEED-DV")
    marker = tmp_path / "ran.txt"
    path = tmp_path / "SEED-DV" / file
    if content == "pickle":
        path.write_bytes(pickle.dumps(Payload(marker)))
        fragment = "is a pickle"
    elif content == "object_array":
        np.save(path, np.array([Payload(marker), 1], dtype=object), allow_pickle=True)
        fragment = "holds Python objects"
    else:
        np.savetxt(path, np.zeros((3, 4)))
        fragment = "is a text file"
    with pytest.raises(UserError, match=fragment) as caught:
        registry.build("datasets", spec)
    assert str(path) in str(caught.value) and len(str(caught.value).splitlines()) == 1
    assert not marker.exists()
    assert not (tmp_path / "SEED-DV" / "cache").exists() or not any((tmp_path / "SEED-DV" / "cache").rglob("meta.json"))


def test_seed_dv_refuses_a_subject_of_the_wrong_shape_before_decoding_video(tmp_path):
    spec = seed_dv_layout(tmp_path / "SEED-DV")
    np.save(tmp_path / "SEED-DV" / "EEG" / "sub1.npy", np.zeros((7, 60, 10), np.float32))
    with pytest.raises(UserError, match=r"has shape \(7, 60, 10\); SEED-DV subjects are \(7, 62, 5200\)"):
        registry.build("datasets", spec)
    assert json.dumps(spec)  # the spec is plain data (what a recipe holds)
