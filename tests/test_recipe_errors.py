"""Malformed recipes: each gives one located message, exit status 2, no traceback, no run directory."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import run_python, tiny_recipe

# (id, recipe text or dict, overrides, expected fragments of the message)
CASES = [
    (
        "unknown_strategy",
        tiny_recipe(**{"eeg.strategy": "lora_q"}),
        [],
        [
            "eeg.strategy.name: 'lora_q' is not a strategy; did you mean 'lora'?",
            "installed: adalora, bitfit, full, head_only",
        ],
    ),
    (
        "misspelt_strategy",
        tiny_recipe(**{"video.strategy": "head_onyl"}),
        [],
        ["video.strategy.name: 'head_onyl' is not a strategy; did you mean 'head_only'?"],
    ),
    (
        "unknown_strategy_in_list",
        tiny_recipe(**{"eeg.strategy": ["full", "bitfitt"]}),
        [],
        ["eeg.strategy.1.name: 'bitfitt' is not a strategy"],
    ),
    (
        "unknown_head",
        tiny_recipe(**{"eeg.head": "mpl"}),
        [],
        ["eeg.head.name: 'mpl' is not a head; did you mean 'mlp'?"],
    ),
    (
        "unknown_dataset",
        tiny_recipe(**{"data.name": "synthetik"}),
        [],
        ["data.name: 'synthetik' is not a data set; did you mean 'synthetic'?"],
    ),
    ("unknown_loss", tiny_recipe(loss="clap"), [], ["loss.name: 'clap' is not a loss; did you mean 'clip'?"]),
    (
        "wrong_modality",
        tiny_recipe(**{"eeg.encoder": "tiny_video"}),
        [],
        ["eeg.encoder.name: 'tiny_video' is a video encoder, this side needs an EEG encoder"],
    ),
    (
        "wrong_type",
        tiny_recipe(**{"train.epochs": "many"}),
        [],
        ["train.epochs: Input should be a valid integer", "'many'"],
    ),
    ("out_of_range", tiny_recipe(**{"train.lr": -1}), [], ["train.lr: Input should be greater than or equal to 0"]),
    (
        "component_option_range",
        tiny_recipe(**{"loss": {"name": "clip", "temperature": 0}}),
        [],
        ["loss.temperature: Input should be greater than 0"],
    ),
    (
        "missing_section",
        {k: v for k, v in tiny_recipe().items() if k != "data"},
        [],
        ["data: required section is missing; name a data set (installed: arrays, "],
    ),
    ("missing_component_name", tiny_recipe(**{"eeg.head": {"hidden": [8]}}), [], ["eeg.head: missing `name`"]),
    ("missing_option", tiny_recipe(data={"name": "arrays"}), [], ["data.path: required key is missing"]),
    ("extra_key_top", {**tiny_recipe(), "epochs": 3}, [], ["epochs: unknown key", "allowed: name, seed, data"]),
    (
        "extra_key_component",
        tiny_recipe(**{"eeg.head": {"name": "mlp", "hiden": [8]}}),
        [],
        ["eeg.head.hiden: unknown key; did you mean 'hidden'?"],
    ),
    ("extra_key_section", tiny_recipe(**{"train.lrr": 0.1}), [], ["train.lrr: unknown key; did you mean 'lr'?"]),
    (
        "architecture_conflict",
        tiny_recipe(**{"eeg.encoder": {"name": "tiny_eeg", "dim": 30, "heads": 4}}),
        [],
        ["eeg.encoder: dim 30 is not divisible by heads 4"],
    ),
    ("strategy_not_a_name", tiny_recipe(**{"eeg.strategy": 5}), [], ["eeg.strategy: expected a strategy name"]),
    ("bad_yaml", "name: x\n  data: [\n", [], ["is not valid YAML at line 2, column 7"]),
    ("not_a_mapping", "- a\n- b\n", [], ["must be a mapping of sections"]),
    ("empty_file", "", [], ["is empty"]),
    ("bad_override_syntax", tiny_recipe(), ["train.lr"], ["override 'train.lr' is not key=value"]),
    ("bad_override_yaml", tiny_recipe(), ["train.lr=[1"], ["override 'train.lr=[1': the value is not valid YAML"]),
    ("bad_override_path", tiny_recipe(), ["train.lr.x=1"], ["train.lr is a value (0.001), not a section"]),
    (
        "bad_override_value",
        tiny_recipe(),
        ["train.batch_size=1"],
        ["train.batch_size: Input should be greater than or equal to 2"],
    ),
    (
        "bad_override_index",
        tiny_recipe(**{"eeg.strategy": ["full"]}),
        ["eeg.strategy.r=8"],
        ["eeg.strategy is a list; index it by position, e.g. eeg.strategy.0"],
    ),
    (
        "wrong_sampling_rate",
        tiny_recipe(**{"data.sfreq": 250}),
        [],
        ["EEG data is sampled at 250 Hz but tiny_eeg expects 200 Hz; resample"],
    ),
    ("window_too_long", tiny_recipe(**{"data.seconds": 17}), [], ["longer than tiny_eeg allows (16 s at most)"]),
    ("unknown_channel", tiny_recipe(**{"data.channels": ["Fp1", "XYZ"]}), [], ["unknown EEG channel 'XYZ'"]),
    ("bipolar_channel", tiny_recipe(**{"data.channels": ["Fp1", "P4-O2"]}), [], ["'P4-O2' is a bipolar derivation"]),
    (
        "bad_composition",
        tiny_recipe(**{"eeg.strategy": ["head_only", "full"]}),
        [],
        ["eeg.strategy: head_only trains nothing in the encoder and cannot be combined with full"],
    ),
    (
        "bad_optimizer",
        tiny_recipe(**{"train.optimizer": "adamww"}),
        [],
        ["train.optimizer: 'adamww' is not a timm optimizer; did you mean 'adamw'?"],
    ),
]


def run_recipe(tmp_path, recipe, overrides, capsys):
    """`python -m recipes.run` in this process (same code path as the module's __main__)."""
    from peftzoo_tools.run import main

    path = tmp_path / "recipe.yaml"
    path.write_text(recipe if isinstance(recipe, str) else yaml.safe_dump(recipe))
    runs = tmp_path / "runs"
    code = main([str(path), *overrides, "--output-dir", str(runs), "--quiet"])
    return code, capsys.readouterr(), runs


@pytest.mark.parametrize("case_id, recipe, overrides, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_recipe(tmp_path, capsys, case_id, recipe, overrides, expected):
    code, out, runs = run_recipe(tmp_path, recipe, overrides, capsys)
    assert code == 2, out.out + out.err
    assert "Traceback" not in out.err, out.err
    assert out.err.startswith("error: ") and out.err.count("error: ") == 1, out.err
    for fragment in expected:
        assert fragment in out.err, f"{fragment!r} not in:\n{out.err}"
    assert not runs.exists() or not any(runs.iterdir()), "a failed recipe left a run directory"


# The same, through a fresh `python -m recipes.run` process, for one case of each stage
# (YAML, override, schema, data check, composition): exit status 2 and no traceback.
SUBPROCESS_CASES = [
    "bad_yaml",
    "bad_override_syntax",
    "unknown_strategy",
    "extra_key_component",
    "wrong_sampling_rate",
    "bad_composition",
]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_malformed_recipe_cli_process(tmp_path, case_id):
    _, recipe, overrides, expected = next(c for c in CASES if c[0] == case_id)
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe if isinstance(recipe, str) else yaml.safe_dump(recipe))
    out = run_python("-m", "recipes.run", str(path), *overrides, "--output-dir", str(tmp_path / "runs"), "--quiet")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stderr.startswith("error: "), out.stderr
    assert all(fragment in out.stderr for fragment in expected), out.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_recipe_file_lists_bundled(tmp_path, capsys):
    from peftzoo_tools.run import main

    assert main(["head_only_tin", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'head_only_tiny.yaml'" in err and "Traceback" not in err
