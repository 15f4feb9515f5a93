"""Hostile recipes: non-finite numbers, booleans as numbers, duplicate keys, out-of-range seeds, sizes too
large to allocate, video architectures torchvision would divide by zero on; and the JSON Schema, which
must accept every bundled recipe and refuse the bad ones peftzoo_tools.run refuses.

Each refused recipe is one located message, exit 2, no traceback and no run directory.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from recipes import schema
from tests.conftest import tiny_recipe

SWIN = {
    "name": "video_swin",
    "embed_dim": 16,
    "depths": [2],
    "num_heads": [2],
    "window_size": [2, 4, 4],
    "frames": 4,
    "size": 32,
}

CASES = [
    ("lr_inf", tiny_recipe(**{"train.lr": float("inf")}), ["train.lr: Input should be a finite number"]),
    (
        "weight_decay_inf",
        tiny_recipe(**{"train.weight_decay": float("inf")}),
        ["train.weight_decay: Input should be a finite number"],
    ),
    ("lr_nan", tiny_recipe(**{"train.lr": float("nan")}), ["train.lr: Input should be a finite number"]),
    (
        "temperature_inf",
        tiny_recipe(loss={"name": "clip", "temperature": float("inf")}),
        ["loss.temperature: Input should be a finite number"],
    ),
    (
        "lr_scale_inf",
        tiny_recipe(**{"train.lr_scales": {"head": float("inf")}}),
        ["train.lr_scales.head: Input should be a finite number"],
    ),
    (
        "strategy_option_inf",
        tiny_recipe(**{"eeg.strategy": {"name": "lora", "alpha": float("inf")}}),
        ["eeg.strategy.alpha: Input should be a finite number"],
    ),
    (
        "stage_lr_nan",
        tiny_recipe(**{"train.stages": [{"epochs": 1, "lr": float("nan")}]}),
        ["train.stages.0.lr: Input should be a finite number"],
    ),
    (
        "epochs_true",
        tiny_recipe(**{"train.epochs": True}),
        ["train.epochs: expected a number, got True (true/false is not a number)"],
    ),
    ("seed_false", tiny_recipe(seed=False), ["seed: expected a number, got False"]),
    (
        "lora_r_true",
        tiny_recipe(**{"eeg.strategy": {"name": "lora", "r": True}}),
        ["eeg.strategy.r: expected a number, got True"],
    ),
    (
        "layers_bool",
        tiny_recipe(**{"eeg.strategy": {"name": "lora", "layers": [True]}}),
        ["eeg.strategy.layers: expected a number"],
    ),
    ("seed_negative", tiny_recipe(seed=-1), ["seed: Input should be greater than or equal to 0"]),
    ("seed_huge", tiny_recipe(seed=2**32), ["seed: Input should be less than or equal to 4294967295"]),
    (
        "data_seed_huge",
        tiny_recipe(**{"data.seed": 2**40}),
        ["data.seed: Input should be less than or equal to 4294967295"],
    ),
    ("embed_dim_huge", tiny_recipe(embed_dim=10**9), ["embed_dim: Input should be less than or equal to 65536"]),
    (
        "eeg_dim_huge",
        tiny_recipe(**{"eeg.encoder": {"name": "tiny_eeg", "dim": 2**22, "depth": 1, "heads": 2}}),
        [
            "eeg.encoder: dim 4194304, depth 1 gives about",
            "GiB in float32",
            "more than this machine's",
            "choose a smaller architecture",
        ],
    ),
    (
        "labram_huge",
        tiny_recipe(
            **{"eeg.encoder": {"name": "labram_base", "embed_dim": 25 * 40000, "conv_channels": 40000, "num_heads": 8}}
        ),
        ["eeg.encoder: embed_dim 1000000, depth 12 gives about"],
    ),
    (
        "swin_window_zero",
        tiny_recipe(**{"video.encoder": {**SWIN, "window_size": [0, 4, 4]}}),
        ["video.encoder: window_size [0, 4, 4] must be positive in every entry"],
    ),
    (
        "swin_patch_zero",
        tiny_recipe(**{"video.encoder": {**SWIN, "patch_size": [2, 0, 4]}}),
        ["video.encoder: patch_size [2, 0, 4] must be positive"],
    ),
    (
        "swin_heads_zero",
        tiny_recipe(**{"video.encoder": {**SWIN, "num_heads": [0]}}),
        ["video.encoder: num_heads [0] must be positive"],
    ),
    (
        "swin_heads_do_not_divide",
        tiny_recipe(**{"video.encoder": {**SWIN, "num_heads": [3]}}),
        ["video.encoder: stage 0 width 16 is not divisible by its 3 heads"],
    ),
    (
        "swin_depth_zero",
        tiny_recipe(**{"video.encoder": {**SWIN, "depths": [0]}}),
        ["video.encoder: depths [0]: every stage needs at least one block"],
    ),
    # was a ZeroDivisionError in torchvision
    (
        "swin_one_block",
        tiny_recipe(**{"video.encoder": {**SWIN, "depths": [1]}}),
        ["video.encoder: depths [1] make one block in all; Video Swin needs at least two"],
    ),
    (
        "swin_huge",
        tiny_recipe(**{"video.encoder": {**SWIN, "embed_dim": 2**20, "num_heads": [2]}}),
        ["video.encoder: embed_dim 1048576"],
    ),
    (
        "tiny_video_patch_zero",
        tiny_recipe(**{"video.encoder": {"name": "tiny_video", "patch_size": [0, 8, 8]}}),
        ["video.encoder: patch_size [0, 8, 8] must be positive"],
    ),
    (
        "duplicate_section",
        "name: x\ntrain:\n  lr: 0.1\ntrain:\n  epochs: 2\n",
        ["is not valid YAML at line 4, column 1: duplicate key 'train' (first given at line 2)"],
    ),
    (
        "duplicate_nested_key",
        yaml.safe_dump(tiny_recipe()) + "eval:\n  every_epochs: 1\n  every_epochs: 2\n",
        ["duplicate key 'every_epochs'"],
    ),
]


def _text(recipe):
    return recipe if isinstance(recipe, str) else yaml.safe_dump(recipe)


@pytest.mark.parametrize("case_id, recipe, fragments", CASES, ids=[c[0] for c in CASES])
def test_hostile_recipe_is_one_located_message(tmp_path, capsys, case_id, recipe, fragments):
    from peftzoo_tools.run import main

    (tmp_path / "r.yaml").write_text(_text(recipe))
    code = main([str(tmp_path / "r.yaml"), "--output-dir", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("error: ") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not (tmp_path / "runs").exists()


def test_duplicate_key_in_an_override_value(tmp_path, capsys):
    from peftzoo_tools.run import main

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(tiny_recipe()))
    assert main([str(tmp_path / "r.yaml"), "train={lr: 1, lr: 2}", "--output-dir", str(tmp_path / "runs")]) == 2
    assert "duplicate key 'lr'" in capsys.readouterr().err


# -- the JSON Schema ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def validator(reg):
    return jsonschema.Draft202012Validator(schema.json_schema(reg))


@pytest.mark.parametrize("name", schema.bundled_names())
def test_json_schema_accepts_every_bundled_recipe(validator, name):
    recipe = schema.read_yaml(schema.BUNDLED_DIR / name)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(recipe)]
    assert not errors, errors


GOOD = [
    ("tiny", tiny_recipe()),
    ("bare_strategy_list", tiny_recipe(**{"eeg.strategy": ["bitfit", {"name": "lora", "r": 4}]})),
    ("strategy_mapping", tiny_recipe(**{"eeg.strategy": {"name": "lora", "targets": ["q", "v"]}})),
    ("stages", tiny_recipe(**{"train.stages": [{"epochs": 1, "eeg": {"strategy": "lora"}}, {"epochs": 1, "lr": 0.1}]})),
]
BAD = [
    ("misspelt_bare_strategy", tiny_recipe(**{"eeg.strategy": ["head_onyl"]})),
    ("misspelt_bare_strategy_alone", tiny_recipe(**{"eeg.strategy": "head_onyl"})),
    ("misspelt_head", tiny_recipe(**{"eeg.head": "mpl"})),
    ("unknown_key", tiny_recipe(**{"train.lrr": 0.1})),
    ("unknown_strategy_option", tiny_recipe(**{"eeg.strategy": {"name": "lora", "rank": 4}})),
    ("epochs_true", tiny_recipe(**{"train.epochs": True})),
    ("epochs_text", tiny_recipe(**{"train.epochs": "many"})),
    ("seed_negative", tiny_recipe(seed=-1)),
    ("empty_strategy_list", tiny_recipe(**{"eeg.strategy": []})),
    ("video_encoder_on_eeg", tiny_recipe(**{"eeg.encoder": "tiny_video"})),
    ("missing_data", {k: v for k, v in tiny_recipe().items() if k != "data"}),
]


@pytest.mark.parametrize("case_id, recipe", GOOD + BAD, ids=[c[0] for c in GOOD + BAD])
def test_json_schema_agrees_with_recipes_run(validator, reg, case_id, recipe):
    """The schema accepts what schema.validate (the run command's check) accepts, and refuses what it refuses."""
    schema_ok = validator.is_valid(json.loads(json.dumps(recipe)))
    try:
        schema.validate(recipe, reg)
        run_ok = True
    except schema.RecipeError:
        run_ok = False
    assert run_ok == ((case_id, recipe) in GOOD)
    assert schema_ok == run_ok, f"JSON Schema says {schema_ok}, peftzoo_tools.run says {run_ok}"


def test_schema_cli_says_to_regenerate_and_refuses_arguments(capsys):
    assert schema.main([]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "regenerate it after installing or removing a plugin" in printed["description"]
    with pytest.raises(SystemExit) as exit_:
        schema.main(["extra", "args"])
    out = capsys.readouterr()
    assert exit_.value.code == 2 and "unrecognized arguments: extra args" in out.err and not out.out
