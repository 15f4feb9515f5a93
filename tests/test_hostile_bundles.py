"""A received bundle runs no code and is read only when its manifest and bundle.json hold up (issue 22, section 1).

Each case edits a copy of one exported bundle the way an attacker or an accident would, keeping the manifest
consistent where the attack needs it (so only the new checks stand in the way), and loads it with
`recipes.load` and, for the pickles, through `python -m recipes.evaluate BUNDLE` in a fresh interpreter.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import recipes
from registry.errors import UserError
from tests.conftest import run_dir_in, run_python, tiny_recipe


class Payload:
    """Unpickling this writes the marker file: proof that code from the bundle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle of a short tiny run: LoRA on the video side (merged), BitFit on the EEG side (re-applied)."""
    from peftzoo_tools.run import main as run_main
    from peftzoo_trained.export import main as export_main

    root = tmp_path_factory.mktemp("bundle")
    recipe = tiny_recipe(
        **{"train.epochs": 1, "data.n": 64, "video.strategy": [{"name": "lora", "r": 2}], "eeg.strategy": "bitfit"}
    )
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert run_main([str(root / "recipe.yaml"), "--output-dir", str(root / "runs"), "--quiet"]) == 0
    assert export_main([str(run_dir_in(root / "runs")), "--bundle", str(root / "b"), "-q"]) == 0
    return root / "b"


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "received"
    shutil.copytree(bundle, out)
    return out


def edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def restamp(bundle: Path) -> None:
    """Rewrite the manifest to match the files as they are now (what an attacker does after editing)."""
    files = {
        p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
        for p in sorted(bundle.iterdir())
        if p.is_file() and p.name != "manifest.json"
    }
    (bundle / "manifest.json").write_text(json.dumps({"files": files}))


def refused(bundle: Path, *fragments: str) -> str:
    with pytest.raises(UserError) as caught:
        recipes.load(bundle, device="cpu")
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def evaluate_refuses(bundle: Path, *fragments: str) -> None:
    out = run_python("-m", "recipes.evaluate", str(bundle), "--no-plot", "-q")
    err = out.stderr.strip()
    assert out.returncode == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err[-3000:]
    for fragment in fragments:
        assert fragment in err, err


def test_the_bundle_loads_as_exported(bundle):
    """The reference: the unedited bundle loads (so each refusal below is the edit's)."""
    model = recipes.load(bundle, device="cpu")
    assert model.embed_eeg(torch.randn(2, len(model.channels), model.n_samples) * 20).shape == (2, 32)
    info = json.loads((bundle / "bundle.json").read_text())
    assert info["eeg"]["encoder"].get("trust_checkpoint") is False and info["eeg"]["encoder"].get("checkpoint") is None


@pytest.mark.parametrize("how", ["encoder_file_is_a_pickle", "checkpoint_beside_it"])
def test_a_planted_pickle_with_a_trust_flag_is_refused_and_never_runs(bundle, tmp_path, how):
    """Before: `trust_checkpoint: true` in bundle.json made the loader unpickle the planted file, running its code."""
    received = copy_of(bundle, tmp_path)
    marker = tmp_path / "ran.txt"
    if how == "encoder_file_is_a_pickle":
        torch.save({"state": Payload(marker)}, received / "video_encoder.safetensors")

        def plant(info):
            info["video"]["encoder"]["trust_checkpoint"] = True
            info["video"]["plain"] = True
    else:
        torch.save({"state": Payload(marker)}, received / "strategies.pt")  # a name the manifest may list

        def plant(info):
            info["eeg"]["encoder"].update(trust_checkpoint=True, checkpoint=str(received / "strategies.pt"))

    edit_json(received / "bundle.json", plant)
    restamp(received)
    refused(received, "trust_checkpoint", "refused")
    evaluate_refuses(received, "trust_checkpoint", "may not turn on unpickling")
    assert not marker.exists()


def test_a_pickle_without_a_trust_flag_is_not_unpickled(bundle, tmp_path):
    """Without any flag: a pickle in place of the weights, or as strategies.pt, is refused by its reader."""
    marker = tmp_path / "ran.txt"
    received = copy_of(bundle, tmp_path)
    torch.save({"state": Payload(marker)}, received / "eeg_encoder.safetensors")
    restamp(received)
    refused(received, "eeg_encoder.safetensors", "not a readable safetensors file")
    shutil.rmtree(received)
    received = copy_of(bundle, tmp_path)
    torch.save({"eeg": [Payload(marker)], "video": []}, received / "strategies.pt")
    restamp(received)
    refused(received, "strategies.pt", "cannot be read")
    evaluate_refuses(received, "strategies.pt")
    assert not marker.exists()


def test_the_manifest_lists_exactly_the_bundles_files(bundle, tmp_path):
    received = copy_of(bundle, tmp_path)
    # a file changed, then dropped from the manifest so that its sha256 is not checked
    (received / "recipe.yaml").write_text("name: changed\n")
    edit_json(received / "manifest.json", lambda m: m["files"].pop("recipe.yaml"))
    refused(received, "recipe.yaml", "manifest does not list")
    restamp(received)
    recipes.load(received, device="cpu")  # consistent again: loads
    (received / "notes.txt").write_text("x")  # a file nobody listed
    refused(received, "notes.txt", "does not list")
    (received / "notes.txt").unlink()
    outside = tmp_path / "outside.safetensors"
    shutil.copy(received / "heads.safetensors", outside)
    for name in ("../outside.safetensors", str(outside), "sub/heads.safetensors"):
        edit_json(
            received / "manifest.json",
            lambda m, name=name: m["files"].__setitem__(name, {"sha256": "0" * 64, "bytes": 1}),
        )
        refused(received, "not a file in the bundle's own folder")
        restamp(received)
    edit_json(received / "manifest.json", lambda m: m.__setitem__("files", {}))
    refused(received, "lists no files")
    restamp(received)
    (received / "heads.safetensors").unlink()
    (received / "heads.safetensors").symlink_to(outside)  # same bytes, but not the bundle's own file
    restamp(received)
    refused(received, "heads.safetensors", "not a regular file")


def test_every_listed_file_is_checked_before_any_is_read(bundle, tmp_path):
    """bundle.json itself is checked against the manifest before it is parsed."""
    received = copy_of(bundle, tmp_path)
    (received / "bundle.json").write_text("{not json")
    refused(received, "bundle.json", "differs from the bundle's manifest")
    restamp(received)
    refused(received, "bundle.json", "cannot be read as JSON")


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (
            lambda i: i.__setitem__("embed_dim", 64),
            ("embed_dim 64", "heads.safetensors", "eeg.head.proj.bias is (32,)", "gives (64,)"),
        ),
        (lambda i: i.__setitem__("embed_dim", True), ("embed_dim",)),
        (lambda i: i.__setitem__("embed_dim", -3), ("embed_dim", "greater than 0")),
        (lambda i: i["data"].__setitem__("sfreq", float("nan")), ("data.sfreq",)),
        (lambda i: i.__setitem__("surprise", 1), ("surprise", "Extra inputs")),
        (lambda i: i["eeg"]["encoder"].__setitem__("dim", 48), ("eeg.encoder", "eeg_encoder.safetensors")),
        (lambda i: i["video"]["head"].__setitem__("name", "no_such_head"), ("video.head", "no_such_head")),
        (lambda i: i["eeg"].pop("head"), ("eeg.head", "Field required")),
    ],
)
def test_bundle_json_is_validated_and_checked_against_the_weights(bundle, tmp_path, edit, fragments):
    """Before: an edited embed_dim gave torch's size-mismatch traceback."""
    received = copy_of(bundle, tmp_path)
    edit_json(received / "bundle.json", edit)
    restamp(received)
    message = refused(received, *fragments)
    assert "export it again" in message and "Traceback" not in message and len(message.splitlines()) == 1


def test_an_edited_embed_dim_is_one_line_from_the_cli(bundle, tmp_path):
    received = copy_of(bundle, tmp_path)
    edit_json(received / "bundle.json", lambda i: i.__setitem__("embed_dim", 64))
    restamp(received)
    evaluate_refuses(received, "embed_dim 64")


def test_evaluation_output_inside_a_bundle_is_not_part_of_it(bundle, tmp_path):
    """`recipes.evaluate BUNDLE --data-path` writes BUNDLE/eval/; the bundle still loads after it."""
    received = copy_of(bundle, tmp_path)
    (received / "eval").mkdir()
    (received / "eval" / "test.json").write_text("{}")
    recipes.load(received, device="cpu")
