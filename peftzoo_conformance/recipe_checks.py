"""End to end: a tiny recipe composed with the component trains two steps, saves, loads and evaluates.

The unit checks look at one component alone; this one runs it where users do, through the documented
commands (`recipes.run`, `recipes.load`, `recipes.evaluate`), so a component the core cannot train,
save, reload or evaluate fails here by name instead of in a user's first run. The other parts of the
recipe are the recipe's defaults (strategy, head, loss), the installed reference encoders
(`conformance_reference`) and the first data set of peftzoo's own distribution that offers
`conformance_example`; the component under test takes its own place (a strategy the side of the first
reference encoder it accepts).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import yaml

import registry
from peftzoo_conformance import probes, strategy_checks
from peftzoo_conformance.errors import ConformanceError, crash_message

CHECK = "trains_in_a_recipe"
CORE_DISTRIBUTION = "peftzoo"
STEPS = 2
EMBED_DIM = 8


def _fail(kind: str, name: str, message: str) -> None:
    raise ConformanceError(CHECK, kind, name, message)


def reference_for(modality: str) -> dict[str, Any]:
    for spec in probes.reference_encoders():
        if getattr(registry.get("encoders", spec["name"]), "modality", None) == modality:
            return spec
    raise ConformanceError(
        CHECK, "encoders", modality, f"no installed {modality} encoder declares `conformance_reference = True`"
    )


def kit_data(directory: Path) -> dict[str, Any]:
    """Options of the small data set the check trains on when the component is not a data set."""
    names = sorted({e.name for e in registry.entries("datasets") if e.distribution == CORE_DISTRIBUTION})
    for name in names:
        component = registry.get("datasets", name)
        if callable(getattr(component, "conformance_example", None)):
            return {"name": name, **probes.dataset_options(name, component, directory / "data")}
    raise ConformanceError(CHECK, "datasets", CORE_DISTRIBUTION, "no data set of peftzoo offers `conformance_example`")


def tiny_recipe(kind: str, name: str, directory: Path) -> dict[str, Any] | None:
    """The recipe that puts component `name` of `kind` in its place; None when the kit cannot make one
    (a data set with required options and no `conformance_example`)."""
    component = registry.get(kind, name)
    own = {"name": name, **probes.small_options(kind, name, component)}
    recipe: dict[str, Any] = {
        "name": "conformance",
        "seed": 0,
        "embed_dim": EMBED_DIM,
        "eeg": {"encoder": reference_for("eeg")},
        "video": {"encoder": reference_for("video")},
        "train": {"epochs": 1, "lr": 1e-3, "feature_cache": False},
    }
    if kind == "datasets":
        options = probes.dataset_options(name, component, directory / "data")
        if options is None:
            return None
        recipe["data"] = {"name": name, **options}
    else:
        recipe["data"] = kit_data(directory)
    if kind == "encoders":
        recipe[component.modality]["encoder"] = own
    elif kind == "strategies":
        applied = strategy_checks.apply(name)  # the first encoder it accepts (its own `conformance_encoders` first)
        side = registry.get("encoders", applied.encoder_spec["name"]).modality
        recipe[side] = {"encoder": applied.encoder_spec, "strategy": [strategy_checks.strategy_spec(name)]}
    elif kind == "heads":
        recipe["eeg"]["head"] = recipe["video"]["head"] = own
    elif kind == "losses":
        recipe["loss"] = own
    return recipe


def _call(main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def check_trains_in_a_recipe(name: str, kind: str, directory: Path) -> bool:
    """Train two steps, save, load with recipes.load, embed, evaluate. False when the kit cannot build a data
    set of this kind (required options and no `conformance_example`). A crash anywhere is reported under
    this check's name."""
    try:
        return _trains_in_a_recipe(name, kind, directory)
    except ConformanceError as exc:
        if exc.check == CHECK and exc.name == name:
            raise
        raise ConformanceError(CHECK, kind, name, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - every crash is reported under this check
        raise ConformanceError(CHECK, kind, name, crash_message(exc)) from exc


def _trains_in_a_recipe(name: str, kind: str, directory: Path) -> bool:
    from peftzoo_tools.evaluate import main as evaluate_main
    from peftzoo_tools.run import main as run_main
    from peftzoo_trained.loading import load

    recipe = tiny_recipe(kind, name, directory)
    if recipe is None:
        return False
    data = registry.build("datasets", recipe["data"], seed=0)
    train_pairs = len(data.split("train"))
    if train_pairs < 2 * STEPS:
        _fail(kind, name, f"the data set's train split has {train_pairs} pairs, too few for {STEPS} steps of 2")
    recipe["train"]["batch_size"] = train_pairs // STEPS
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    code, out, err = _call(run_main, [str(path), "--output-dir", str(directory / "runs"), "--quiet"])
    if code != 0:
        _fail(kind, name, f"python -m recipes.run on a tiny recipe with it failed (exit {code}): {_last_line(err)}")
    run = Path(_last_line(out).removeprefix("run: "))
    if not (run / "trainable.safetensors").is_file():
        _fail(kind, name, f"the run trained but saved no trainable.safetensors in {run}")
    try:
        model = load(run, device="cpu")
        n = min(4, len(data))
        eeg = model.embed_eeg(data.eeg[:n], channels=list(data.channels))
        video = model.embed_video(data.video[:n])
    except Exception as exc:  # noqa: BLE001 - reported under this check, naming the stage
        _fail(kind, name, f"recipes.load of the trained run, then embedding, failed: {type(exc).__name__}: {exc}")
    for what, e in (("EEG", eeg), ("video", video)):
        finite = bool(e.isfinite().all())
        if tuple(e.shape) != (n, EMBED_DIM) or not finite:
            _fail(
                kind,
                name,
                f"the loaded run embeds {n} {what} samples as {tuple(e.shape)}"
                f"{'' if finite else ' with NaN or inf'}; expected finite ({n}, {EMBED_DIM})",
            )
    code, _, err = _call(evaluate_main, [str(run), "--split", "val", "--no-plot", "--resamples", "10", "-q"])
    if code != 0:
        _fail(kind, name, f"python -m recipes.evaluate on the trained run failed (exit {code}): {_last_line(err)}")
    report = json.loads((run / "eval" / "val.json").read_text())
    recall = report.get("val/eeg_to_video/R@1")
    if not (isinstance(recall, (int, float)) and math.isfinite(recall)):
        _fail(kind, name, f"evaluation gave val/eeg_to_video/R@1 = {recall!r}")
    return True
