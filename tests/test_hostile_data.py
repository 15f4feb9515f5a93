"""Hostile data: malformed arrays directories, non-finite EEG, wrong units, tiny video, bad channel lists.

Each refusal is one message naming the file or pairs, the problem and the fix, exit 2, found before
any run directory is made; warnings name the factor to apply.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml

from peftzoo_data.base import DataError
from peftzoo_data.checks import check_eeg
from tests.arrays_factory import write_arrays
from tests.conftest import tiny_recipe


def _edit_eeg(root, edit):
    eeg = np.load(root / "eeg.npy")
    edit(eeg)
    np.save(root / "eeg.npy", eeg)


def _nan_pairs(*pairs):
    def edit(eeg):
        for p in pairs:
            eeg[p, 1, 7] = np.nan

    return edit


def _set(name, content):
    def make(root):
        path = root / name
        if path.exists():
            path.unlink()
        if content == "dir":
            path.mkdir()
        else:
            path.write_bytes(content)

    return make


def _write_npy(name, array):
    return lambda root: np.save(root / name, array)


CASES = [
    (
        "sfreq_word",
        dict(meta={"sfreq": "fast", "channels": ["FP1", "FP2", "C3", "C4", "O1", "O2"]}),
        None,
        ["meta.json: sfreq must be a positive number (e.g. sfreq: 200), got 'fast'"],
    ),
    (
        "sfreq_null",
        dict(meta={"sfreq": None, "channels": ["FP1", "FP2", "C3", "C4", "O1", "O2"]}),
        None,
        ["sfreq must be a positive number", "got None"],
    ),
    (
        "sfreq_list",
        dict(meta={"sfreq": [200], "channels": ["FP1", "FP2", "C3", "C4", "O1", "O2"]}),
        None,
        ["sfreq must be a positive number", "got [200]"],
    ),
    ("sfreq_bool", dict(meta={"sfreq": True, "channels": ["FP1", "FP2", "C3", "C4", "O1", "O2"]}), None, ["got True"]),
    ("meta_bare_string", dict(meta="200 Hz"), None, ["meta.json holds a str ('200 Hz'), not an object"]),
    (
        "channels_not_a_list",
        dict(meta={"sfreq": 200, "channels": "FP1,FP2"}),
        None,
        ["channels must be a list of channel names (strings)"],
    ),
    (
        "channels_count",
        dict(meta={"sfreq": 200, "channels": ["FP1", "FP2"]}),
        None,
        ["channels names 2 channels but eeg.npy has 6 rows per pair"],
    ),
    (
        "fps_negative",
        dict(meta={"sfreq": 200, "channels": ["FP1", "FP2", "C3", "C4", "O1", "O2"], "fps": -8}),
        None,
        ["fps must be a positive number"],
    ),
    ("eeg_empty_file", {}, _set("eeg.npy", b""), ["eeg.npy is empty (0 bytes)", "write it again with np.save"]),
    (
        "eeg_text",
        {},
        _set("eeg.npy", b"1.0 2.0 3.0\n4.0 5.0 6.0\n"),
        ["eeg.npy is a text file", "not a numpy .npy array", "not np.savetxt"],
    ),
    (
        "eeg_truncated",
        {},
        lambda r: (r / "eeg.npy").write_bytes((r / "eeg.npy").read_bytes()[:200]),
        ["eeg.npy is truncated or damaged"],
    ),
    ("eeg_directory", {}, _set("eeg.npy", "dir"), ["eeg.npy is a directory, not a file"]),
    ("meta_directory", {}, _set("meta.json", "dir"), ["meta.json is a directory, not a file"]),
    ("split_directory", {}, _set("split.npy", "dir"), ["split.npy is a directory, not a file"]),
    ("zero_pairs", {}, _write_npy("eeg.npy", np.zeros((0, 6, 200), np.float32)), ["eeg.npy holds 0 pairs"]),
    (
        "nan_pairs",
        {},
        lambda r: _edit_eeg(r, _nan_pairs(3, 11)),
        ["the EEG of 2 of 16 pairs holds NaN, inf or values beyond 1 V (pairs 3, 11)", "set data.drop_nonfinite: true"],
    ),
    ("inf_pair", {}, lambda r: _edit_eeg(r, lambda e: e.__setitem__((0, 0, 0), np.inf)), ["(pairs 0)"]),
    (
        "eeg_1e30",
        {},
        lambda r: _edit_eeg(r, lambda e: e.__imul__(np.float32(1e29))),
        ["the EEG of every pair (16) holds NaN, inf or values beyond 1 V"],
    ),
    ("volts", dict(amplitude_uv=20e-6), None, ["which cannot be microvolts", "volts: multiply by 1e6"]),
    ("all_zeros", dict(amplitude_uv=0.0), None, ["the EEG is all zeros"]),
    ("video_2x2", dict(size=2), None, ["video frames of 2x2 pixels are below the 8-pixel floor"]),
    (
        "old_and_new_name_of_one_site",
        dict(channels=["FP1", "FP2", "T7", "C4", "O1", "T3"]),
        None,
        ["EEG channels 'T7' and 'T3' are the same site (T7, under its old and new 10-20 names)"],
    ),
    (
        "bipolar_in_labram_list",
        dict(channels=["FP1-F7", "FP2", "C3", "C4", "O1", "O2"]),
        None,
        ["EEG channel 'FP1-F7' is a bipolar derivation", "give referential channels"],
    ),
]


def _recipe(tmp_path, changes=None, **data):
    path = tmp_path / "r.yaml"
    spec = {"name": "arrays", "path": str(tmp_path / "pairs"), **(data or {})}
    path.write_text(yaml.safe_dump(tiny_recipe(data=spec, **{"train.epochs": 1, **(changes or {})})))
    return path


def _run(tmp_path, capsys, recipe):
    from peftzoo_tools.run import main

    code = main([str(recipe), "--output-dir", str(tmp_path / "runs"), "--quiet"])
    return code, capsys.readouterr()


@pytest.mark.parametrize("case_id, arrays, damage, fragments", CASES, ids=[c[0] for c in CASES])
def test_hostile_arrays_directory(tmp_path, capsys, case_id, arrays, damage, fragments):
    root = write_arrays(tmp_path / "pairs", **arrays)
    if damage is not None:
        damage(root)
    code, out = _run(tmp_path, capsys, _recipe(tmp_path))
    assert (
        code == 2 and out.err.startswith("error: ") and out.err.count("error: ") == 1 and "Traceback" not in out.err
    ), out.err
    for fragment in fragments:
        assert fragment in out.err, f"{fragment!r} not in {out.err!r}"
    assert "val_fraction" not in out.err and "pickled" not in out.err
    assert not (tmp_path / "runs").exists()


def test_drop_nonfinite_leaves_the_pairs_out_and_trains(tmp_path, capsys, caplog):
    root = write_arrays(tmp_path / "pairs", n=20, split=["train"] * 14 + ["val"] * 6)
    _edit_eeg(root, _nan_pairs(2, 15))
    with caplog.at_level(logging.WARNING):
        code, out = _run(tmp_path, capsys, _recipe(tmp_path, drop_nonfinite=True))
    assert code == 0, out.err
    assert "left out 2 of 20 pairs whose EEG holds NaN, inf or values beyond 1 V (pairs 2, 15)" in caplog.text


def test_check_eeg_keeps_arrays_on_disk_and_renumbers_splits(tmp_path, reg):
    root = write_arrays(tmp_path / "pairs", n=10, split=["train"] * 6 + ["val"] * 4)
    _edit_eeg(root, _nan_pairs(1, 7))
    data = reg.build("datasets", {"name": "arrays", "path": str(root)})
    with pytest.raises(DataError, match=r"pairs 1, 7"):
        check_eeg(data)
    kept = check_eeg(data, drop_nonfinite=True)
    assert len(kept) == 8 and kept.eeg.shape == (8, 6, 200) and kept.video.shape[0] == 8
    assert isinstance(kept.eeg.base, np.memmap)
    assert kept.split("train").tolist() == [0, 1, 2, 3, 4] and kept.split("val").tolist() == [5, 6, 7]
    np.testing.assert_array_equal(kept.eeg[1], data.eeg[2])
    assert kept.fingerprint != data.fingerprint
    assert np.isfinite(np.asarray(kept.eeg)).all()


@pytest.mark.parametrize(
    "amplitude, fragment", [(20e-3, "millivolts: multiply by 1e3"), (5e3, "nanovolts: multiply by 1e-3")]
)
def test_implausible_amplitude_warns_with_the_factor(tmp_path, reg, caplog, amplitude, fragment):
    root = write_arrays(tmp_path / "pairs", amplitude_uv=amplitude)
    with caplog.at_level(logging.WARNING):
        check_eeg(reg.build("datasets", {"name": "arrays", "path": str(root)}))
    assert "implausible for scalp EEG" in caplog.text and fragment in caplog.text


def test_plausible_microvolts_pass_quietly(tmp_path, reg, caplog):
    root = write_arrays(tmp_path / "pairs", amplitude_uv=30.0)
    with caplog.at_level(logging.WARNING):
        check_eeg(reg.build("datasets", {"name": "arrays", "path": str(root)}))
    assert not caplog.text


def test_tiny_video_is_upscaled_and_repeated_with_a_warning(caplog):
    from encoders.base import VideoInputSpec

    spec = VideoInputSpec(frames=16, size=224, mean=(0, 0, 0), std=(1, 1, 1), resize=256)
    with caplog.at_level(logging.WARNING):
        spec.check(frame_shape=(1, 32, 48, 3), encoder="video_swin")
    assert "32x48 pixels are upscaled x8.0" in caplog.text
    assert "have 1 frames and video_swin takes 16: each frame is repeated about x16.0" in caplog.text
