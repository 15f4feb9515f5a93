"""`python -m recipes.cache list|clear`: what the cache holds, and removing all, old or named entries."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

import encoders
from peftzoo_engine import feature_cache, video_cache
from peftzoo_engine.cache.cli import main
from tests.cache_support import entry_files, tiny_model
from tests.conftest import run_python


@pytest.fixture()
def cache(tmp_path):
    """A cache with an EEG feature entry, a clip entry, an unfinished data file, a temporary file and a stranger."""
    data, model = tiny_model(16)
    directory = tmp_path / "cache"
    feature_cache.features("eeg", model.eeg, data, torch.device("cpu"), directory, batch_size=8)
    video_cache.prepare(
        encoders.build("tiny_video", dim=8, depth=1, heads=2, frames=4, size=16), data, directory, batch_size=8
    )
    (directory / f"video-{'0' * 32}.safetensors").write_bytes(b"half")  # its writer was killed before the manifest
    (directory / f".eeg-{'1' * 32}.safetensors.dead.tmp").write_bytes(b"x")
    (directory / "notes.txt").write_text("not the cache's")
    return directory


def listing(directory, capsys) -> dict:
    assert main(["--cache-dir", str(directory), "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_says_what_each_entry_is(cache, capsys):
    assert main(["--cache-dir", str(cache), "list"]) == 0
    table = capsys.readouterr().out
    assert table.startswith(f"cache {cache}: 3 entries,") and "tiny_eeg" in table and "tiny_video" in table
    report = listing(cache, capsys)
    by_kind = {e["kind"]: e for e in report["entries"] if e["status"] == "ok"}
    assert set(by_kind) == {"features", "video-clips"}
    eeg = by_kind["features"]
    assert eeg["side"] == "eeg" and eeg["encoder"] == "tiny_eeg" and eeg["pairs"] == 16 and eeg["device"] == "cpu"
    assert "fingerprint" in eeg["data"] and eeg["size_bytes"] > 16 * 32 * 4 and 0 <= eeg["age_days"] < 0.01
    (broken,) = [e for e in report["entries"] if e["status"] != "ok"]
    assert broken["entry"] == f"video-{'0' * 32}" and "never completed" in broken["status"]
    assert report["size_bytes"] == sum(e["size_bytes"] for e in report["entries"])


def test_clear_one_entry_by_prefix(cache, capsys):
    eeg = next(e["entry"] for e in listing(cache, capsys)["entries"] if e["side"] == "eeg")
    assert main(["--cache-dir", str(cache), "clear", eeg[:12]]) == 0
    assert "removed 1 of 3 entries" in capsys.readouterr().out
    assert [e["entry"] for e in listing(cache, capsys)["entries"] if e["entry"] == eeg] == []
    assert not any(name.startswith(eeg) for name in entry_files(cache))


def test_clear_older_than_goes_by_last_use(cache, capsys):
    entries = listing(cache, capsys)["entries"]
    old = next(e for e in entries if e["kind"] == "video-clips" and e["status"] == "ok")
    past = time.time() - 3 * 86400
    os.utime(cache / f"{old['entry']}.json", (past, past))
    assert main(["--cache-dir", str(cache), "clear", "--older-than", "2"]) == 0
    assert "removed 1 of 3 entries" in capsys.readouterr().out
    assert old["entry"] not in [e["entry"] for e in listing(cache, capsys)["entries"]]


def test_clear_all_removes_entries_and_temporaries_only(cache, capsys):
    assert main(["--cache-dir", str(cache), "clear", "--all"]) == 0
    assert "removed 3 of 3 entries" in capsys.readouterr().out
    assert entry_files(cache) == ["notes.txt"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["clear"], "needs --all, --older-than DAYS or ENTRY"),
        (["clear", "--older-than", "-1"], "finite number >= 0"),
        (["clear", "--older-than", "soon"], "not a number of days"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["--cache-dir", str(tmp_path), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_an_unknown_entry_exits_2_naming_it(cache, capsys):
    assert main(["--cache-dir", str(cache), "clear", "eeg-ffff"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no entry 'eeg-ffff'") and err.count("\n") == 1
    assert len(listing(cache, capsys)["entries"]) == 3  # nothing removed


def test_a_bad_cache_path_exits_2_with_one_message(tmp_path):
    (tmp_path / "file").write_text("x")
    for path, says in ((tmp_path / "absent", "does not exist"), (tmp_path / "file", "is a file")):
        result = run_python("-m", "recipes.cache", "--cache-dir", str(path), "list")
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("error: ") and says in result.stderr and result.stderr.count("\n") == 1


def test_an_entry_in_use_is_skipped(cache, capsys):
    import filelock

    eeg = next(e["entry"] for e in listing(cache, capsys)["entries"] if e["side"] == "eeg")
    with filelock.FileLock(str(cache / ".locks" / f"{eeg}.lock")):  # another process writing or reading it
        assert main(["--cache-dir", str(cache), "clear", "--all"]) == 0
    captured = capsys.readouterr()
    assert f"skipped {eeg}: another process is using it" in captured.err and "removed 2 of 3 entries" in captured.out
    assert [e["entry"] for e in listing(cache, capsys)["entries"]] == [eeg]


def test_list_verify_finds_bytes_changed_in_place(cache, capsys):
    """Same size, other bytes: only the sha256 tells; `list` reads sizes only, `list --verify` every byte."""
    clips = next(cache.glob("video-clips-*.npy"))
    raw = bytearray(clips.read_bytes())
    raw[-1] ^= 0xFF
    clips.write_bytes(bytes(raw))
    assert all(e["status"] == "ok" for e in listing(cache, capsys)["entries"] if e["kind"] == "video-clips")
    assert main(["--cache-dir", str(cache), "list", "--json", "--verify"]) == 0
    (entry,) = [e for e in json.loads(capsys.readouterr().out)["entries"] if e["kind"] == "video-clips"]
    assert "sha256" in entry["status"]
