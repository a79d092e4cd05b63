"""Resumable checkpoints that hold the trainable state only, once, and a retention limit.

accelerate's ``save_state`` writes the whole wrapped model; with a frozen FLUX.1-dev base that is
24-48 GB per checkpoint for a few hundred MB of adapters. The hooks registered here take the model
out of accelerate's hands and write the parameters that require grad exactly once:

* Seg2Any adapters: the official ``default/`` and ``cond/`` LoRA files *are* the trainable state
  (fp32, lora_alpha = r so the stored up-projection is the parameter itself), and resuming reads
  them back; a second copy next to them would double the checkpoint's adapter bytes;
* t2i (everything trains): ``trainable.safetensors`` in the training dtype (the exported
  ``flux.safetensors`` is fp16, too coarse to resume from).

accelerate still saves the optimizer, scheduler and RNG states. ``trainer_state.json`` records the
data position (epoch and batches consumed in it) and the loss curve so far, and
``trainer_rng_<rank>.pt`` each rank's noise generator, so a resumed run continues the uninterrupted
run's loss curve instead of repeating batches.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import torch

log = logging.getLogger("seg2any.train")

TRAINABLE_FILE = "trainable.safetensors"
STATE_FILE = "trainer_state.json"


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def is_adapter_state(model) -> bool:
    """Whether the trainable parameters are exactly the Seg2Any LoRA factors (stored as the official files)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return bool(names) and all(".lora_A." in n or ".lora_B." in n for n in names)


def save_trainable(model, directory: str) -> None:
    if is_adapter_state(model):
        from seg2any.adapters.diffusers import lora_from_peft
        from seg2any.flux.lora_format import write_checkpoint

        write_checkpoint(directory, lora_from_peft(model))
    else:
        from safetensors.torch import save_file

        save_file(trainable_state(model), os.path.join(directory, TRAINABLE_FILE))


def read_trainable(model, directory: str) -> dict[str, torch.Tensor]:
    """The saved trainable parameters under the model's parameter names."""
    if not is_adapter_state(model):
        from safetensors.torch import load_file

        path = os.path.join(directory, TRAINABLE_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{directory} has no {TRAINABLE_FILE}: not a checkpoint of this trainer")
        return load_file(path)
    from seg2any.flux.lora_format import load_checkpoint

    lora = load_checkpoint(directory)
    modules = dict(model.named_modules())
    saved = {}
    for adapter in ("default", "cond"):
        for name, f in lora.adapter(adapter).items():
            scaling = modules[name].scaling[adapter] if name in modules else 1.0
            saved[f"{name}.lora_A.{adapter}.weight"] = f.down
            saved[f"{name}.lora_B.{adapter}.weight"] = f.up * (f.scale / scaling)
    return saved


def register_trainable_only(acc, get_model) -> None:
    """Save/load hooks so accelerate's checkpoints carry ``get_model()``'s trainable parameters only, once.

    (DeepSpeed saves through its engine instead; pass ``exclude_frozen_parameters=True`` there.)
    """

    def save_hook(models, weights, output_dir):
        if acc.is_main_process:
            save_trainable(get_model(), output_dir)
        weights.clear()  # accelerate would write the whole model (frozen base included) from these

    def load_hook(models, input_dir):
        saved = read_trainable(get_model(), input_dir)
        params = dict(get_model().named_parameters())
        want = {n for n, p in params.items() if p.requires_grad}
        if set(saved) != want:
            missing, extra = sorted(want - set(saved))[:3], sorted(set(saved) - want)[:3]
            raise ValueError(f"{input_dir} does not match the model being trained (missing {missing}, unexpected {extra})")
        with torch.no_grad():
            for n, t in saved.items():
                params[n].copy_(t)
        models.clear()  # nothing left for accelerate to load into the model

    acc.register_save_state_pre_hook(save_hook)
    acc.register_load_state_pre_hook(load_hook)


def checkpoint_steps(out: str) -> list[tuple[int, str]]:
    found = []
    if os.path.isdir(out):
        for d in os.listdir(out):
            m = re.fullmatch(r"checkpoint-(\d+)", d)
            if m and os.path.isdir(os.path.join(out, d)):
                found.append((int(m.group(1)), os.path.join(out, d)))
    return sorted(found)


def latest_checkpoint(out: str) -> str | None:
    found = [p for _, p in checkpoint_steps(out) if os.path.isfile(os.path.join(p, STATE_FILE))]
    return found[-1] if found else None


def prune_checkpoints(out: str, keep: int | None) -> list[str]:
    """Remove the oldest ``checkpoint-<step>`` folders so that ``keep`` remain; returns the removed."""
    if keep is None or keep <= 0:
        return []
    old = checkpoint_steps(out)[:-keep]
    for _, path in old:
        shutil.rmtree(path)
        log.info("removed %s (--checkpoints-total-limit %d)", path, keep)
    return [p for _, p in old]


def save_rng(path: str, rank: int, generator: torch.Generator) -> None:
    torch.save(generator.get_state(), os.path.join(path, f"trainer_rng_{rank}.pt"))


def write_trainer_state(path: str, state: dict) -> None:
    """Written last (by the main process, after every rank saved): its presence marks a complete checkpoint."""
    tmp = os.path.join(path, STATE_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, os.path.join(path, STATE_FILE))


def check_process_count(path: str, processes: int) -> None:
    """Refuse a resume with another number of processes: the data position, the skipped batches and
    the noise generators are per process, so the run would silently leave the saved loss curve."""
    state_file = os.path.join(path, STATE_FILE)
    if not os.path.isfile(state_file):
        return  # read_trainer_state says what is missing
    with open(state_file) as f:
        saved = len(json.load(f).get("ranks") or []) or None
    if saved is not None and saved != processes:
        raise ValueError(
            f"{path} was written by {saved} process(es); resume it with {saved} (this run has {processes}): "
            "each process's data position and noise generator are part of the checkpoint"
        )


def read_trainer_state(path: str, rank: int, generator: torch.Generator) -> dict:
    state_file = os.path.join(path, STATE_FILE)
    if not os.path.isfile(state_file):
        raise FileNotFoundError(f"{state_file} is missing: {path} is not a complete checkpoint of this trainer")
    with open(state_file) as f:
        state = json.load(f)
    rng = os.path.join(path, f"trainer_rng_{rank}.pt")
    if not os.path.isfile(rng):
        raise FileNotFoundError(f"{rng} is missing: was {path} written by a run with as many processes as this one?")
    generator.set_state(torch.load(rng))
    return state
