"""`python -m recipes.export RUN_DIR (--peft OUT | --merged OUT)`: a trained run for other tools.

--peft OUT     each side's LoRA in Hugging Face PEFT's format, OUT/<side>/adapter_config.json and
               adapter_model.safetensors, which `peft.PeftModel.from_pretrained(encoder, OUT/<side>)`
               loads onto the base encoder (built as the recipe builds it) with the same outputs.
--merged OUT   LoRA folded into the base weights: OUT/<side>_encoder.safetensors, plain encoder state
               dicts that the encoder loads as its `checkpoint`; OUT/heads.safetensors (heads and
               temperature); OUT/recipe.yaml, the run's recipe pointing at the merged encoders.

The model is rebuilt from RUN_DIR/recipe.yaml with the run's seed (so randomly initialized parts
come out the same) and its trainable weights are loaded from RUN_DIR/trainable.safetensors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save

import registry
from adapters.strategies.lora import merge
from adapters.strategies.lora.export import to_peft
from recipes import schema
from recipes.compose import compose, stage_plan, switch_stage
from recipes.errors import RecipeError
from recipes.model import DualEncoderCLIP
from recipes.rundir import atomic_write
from recipes.engine import seed_everything
from recipes.weights import load_trainable
from registry.errors import UserError


def load_run(run_dir: Path) -> tuple[object, DualEncoderCLIP]:
    """The run's validated recipe and its model with the trained weights loaded."""
    for name in ("recipe.yaml", "trainable.safetensors"):
        if not (run_dir / name).is_file():
            raise RecipeError(f"{run_dir / name} is missing; give a finished run directory (python -m recipes.run prints it)")
    reg = registry.default()
    recipe = schema.validate(schema.read_yaml(run_dir / "recipe.yaml"), reg, source=str(run_dir / "recipe.yaml"))
    seed_everything(recipe.seed)
    model = compose(recipe, None, reg)
    for stage in stage_plan(recipe):  # rebuild what every stage added
        switch_stage(model, stage, reg, None)
    load_trainable(model, run_dir / "trainable.safetensors")
    return recipe, model.eval()


def export_peft(model: DualEncoderCLIP, out: Path) -> list[str]:
    written = []
    for side in ("eeg", "video"):
        encoder = getattr(model, side).encoder
        try:
            config, state = to_peft(encoder)
        except ValueError:
            continue  # this side has no LoRA
        target = out / side
        target.mkdir(parents=True, exist_ok=True)
        atomic_write(target / "adapter_model.safetensors", save(state))
        atomic_write(target / "adapter_config.json", json.dumps(config.to_dict(), indent=2, default=list) + "\n")
        written.append(side)
    if not written:
        raise RecipeError("this run has no LoRA strategy on either side; --peft exports LoRA adapters only")
    return written


def export_merged(recipe, model: DualEncoderCLIP, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    raw = recipe.model_dump(mode="json")
    for side in ("eeg", "video"):
        encoder = getattr(model, side).encoder
        merge(encoder)
        leftover = [n for n, _ in encoder.named_parameters() if "lora_" in n or "prefix" in n or "prompt" in n]
        if leftover:
            raise RecipeError(f"{side}: {leftover[0]} cannot be merged into the base weights; export with --peft or use the run as is")
        path = out / f"{side}_encoder.safetensors"
        atomic_write(path, save({k: v.contiguous() for k, v in encoder.state_dict().items()}))
        raw[side]["encoder"]["checkpoint"] = str(path.resolve())
        raw[side]["strategy"] = ["head_only"]
    # Tensors only: a loss's extra state (protonce's prototypes) is training state, not needed for inference.
    heads = {
        k: v.contiguous() for k, v in model.state_dict().items()
        if k.startswith(("eeg.head.", "video.head.", "loss.")) and isinstance(v, torch.Tensor)
    }
    atomic_write(out / "heads.safetensors", save(heads))
    atomic_write(out / "recipe.yaml", schema.dump(schema.validate(raw, registry.default())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--peft", type=Path, metavar="OUT", help="write LoRA adapters in Hugging Face PEFT format")
    group.add_argument("--merged", type=Path, metavar="OUT", help="write encoders with LoRA merged into their weights")
    args = parser.parse_args(argv)
    try:
        recipe, model = load_run(args.run_dir)
        if args.peft:
            sides = export_peft(model, args.peft)
            print(f"peft adapters ({', '.join(sides)}): {args.peft}")
        else:
            export_merged(recipe, model, args.merged)
            print(f"merged: {args.merged}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
