"""Train Seg2Any adapters (or, for the small-scale experiment, the base text-to-image model).

    # Seg2Any adapters on a base FLUX (the official recipe: both adapters, rank r, lr 1e-4, AdamW)
    accelerate launch --config_file training/configs/accelerate_multi_gpu.yaml -m training.train \\
        --stage seg2any --dataset sacap --parquet anno_train.parquet --image-root SA-1B/ \\
        --base FLUX.1-dev/ --resolution 1024 --cond-scale-factor 2 --rank 64 --out runs/sacap

    # the small-scale experiment's two stages on synthetic shapes (CPU is fine)
    python -m training.train --stage t2i --dataset synthetic --out runs/base
    python -m training.train --stage seg2any --dataset synthetic --base runs/base/flux.safetensors --out runs/s2a

    # one GPU: features encoded once (python -m training.precompute, same data flags), fp8 base
    python -m training.train --stage seg2any --dataset sacap ... --precomputed features/ --base-quant fp8

Writes the official checkpoint layout (checkpoint-<step>/default|cond/pytorch_lora_weights.safetensors,
loadable by the official code and by Load Seg2Any LoRA), which is also the resumable trainable state,
next to the optimizer state and data position (training.checkpoints). Features of the frozen VAE / T5
come from precomputed shards (training.shards) or are encoded per batch into a bounded LRU
(training.encoder; the official trainer recomputes them every step, with the same values).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from seg2any.adapters.diffusers import Seg2AnyFlux, add_seg2any_adapters, lora_from_peft
from seg2any.adapters.diffusers_pipeline import generate
from seg2any.attention.kernels import resolve_backend
from seg2any.conditioning.batching import condition_inputs, kernel_for, layer_rules, pad_text, plan_rows
from seg2any.conditioning.condition_tokens import pack_latents
from seg2any.flux.lora_format import write_checkpoint

from .checkpoints import (
    check_process_count,
    checkpoint_steps,
    latest_checkpoint,
    prune_checkpoints,
    read_trainer_state,
    register_trainable_only,
    save_rng,
    write_trainer_state,
)
from .data import BucketBatchSampler, Robust, SkipBatches, SyntheticShapes, collate_samples
from .encoder import Encoder
from .lengths import bucket_lengths, sample_lengths
from .models import TINY_FLUX, frozen_encoders, load_flux, new_transformer, save_flux
from .options import add_data_options, build_dataset, dataset_signature, feature_signature, mixed_precision
from .quant import QUANT_CHOICES, check_quant_available, quantize_base

log = logging.getLogger("seg2any.train")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["t2i", "seg2any"], default="seg2any")
    add_data_options(ap)
    ap.add_argument(
        "--precomputed", help="train from the shards of python -m training.precompute (same data flags) instead of encoding"
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--lr", type=float, default=None, help="default: 1e-4 for adapters (official), 5e-4 for t2i")
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--optimizer", choices=["adamw", "adamw8bit"], default="adamw", help="adamw8bit: bitsandbytes, CUDA only")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (official: 64 on FLUX.1-dev)")
    ap.add_argument("--base-quant", choices=QUANT_CHOICES, default="none",
                    help="store the frozen base's Linear weights as fp8 (any device) or NF4 (CUDA + bitsandbytes)")  # fmt: skip
    ap.add_argument("--mode", choices=["hard", "base", "place"], default="hard")
    ap.add_argument("--guidance", type=float, default=1.0, help="embedded guidance while training (official: 1)")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--bucket", action="store_true", help="bucket batches by condition/text token counts (official GroupSampler)")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--cache-gb", type=float, default=2.0, help="per-process bound of the VAE/T5 feature cache (0: none)")
    ap.add_argument("--cache-dir", help="bucket-length counts kept across runs (default: OUT/cache)")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--checkpoints-total-limit", type=int, default=None, help="keep only the newest N checkpoints")
    ap.add_argument("--report-to", default="auto",
                    help="trackers: auto (tensorboard, + wandb when installed), none, or a list such as tensorboard,wandb")  # fmt: skip
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--val-steps", type=int, default=16)
    ap.add_argument("--validation-samples", "--val-holdout", dest="val_holdout", type=int, default=4,
                    help="folder/SACap: the last N items are kept out of training and rendered for validation")  # fmt: skip
    ap.add_argument("--resume", help="a checkpoint-<step> folder, or 'latest'")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this much wall time")
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------------------------
# data


def sigma_like_official(n: int, generator) -> torch.Tensor:
    """sigma uniform on {0.001, ..., 1.000} (u ~ U(0,1) indexing the 1000 training timesteps)."""
    idx = torch.floor(torch.rand(n, generator=generator) * 1000).long()
    return (1000 - idx).float() / 1000.0


def training_loss(net, enc: Encoder, samples, stage, mode, guidance, backend, generator, device, dtype):
    """The flow-matching loss of one batch, and how many condition tokens it held."""
    z0 = enc.images(samples).to(device)
    infos, texts, pooled = [], [], []
    for s in samples:
        info, e = enc.info(s, stage, mode)
        infos.append(info)
        texts.append(e.cond[0])
        pooled.append(e.pooled)
    grid = (z0.shape[-2] // 2, z0.shape[-1] // 2)
    plan, trivial = plan_rows(infos, grid, backend, reorder_ok=True)
    kernel = kernel_for(plan, trivial, backend, device)
    dims = net.module.dims if hasattr(net, "module") else net.dims
    rules = layer_rules(infos, dims.n_double, dims.n_single)
    tokens, ids = condition_inputs(infos, plan, dims.in_channels, device, dtype, enc.m.process_in)
    text = pad_text([t.to(device) for t in texts], plan.text_len).to(dtype)
    pool = None if pooled[0] is None else torch.cat(pooled).to(device, dtype)
    perm = torch.stack([torch.from_numpy(p) for p in plan.perm]).to(device) if plan.reordered else None
    sigma = sigma_like_official(len(samples), generator).to(device)
    noise = torch.randn(z0.shape, generator=generator).to(device)
    s = sigma.view(-1, 1, 1, 1)
    xt = (1 - s) * z0 + s * noise
    target = pack_latents(noise - z0)
    g = torch.full((len(samples),), guidance, device=device)
    pred = net(pack_latents(xt).to(dtype), sigma, text, pool, g, grid, kernel, rules, tokens, ids, perm)
    n_cond = 0 if tokens is None else int(tokens.shape[1])
    return F.mse_loss(pred.float(), target.float()), n_cond


# ----------------------------------------------------------------------------------------------
# checkpoints


def export(transformer, stage, path, params):
    """The artifact of a checkpoint: official LoRA layout (seg2any) or the base weights (t2i)."""
    if stage == "seg2any":
        write_checkpoint(path, lora_from_peft(transformer))
    else:
        os.makedirs(path, exist_ok=True)
        save_flux(transformer, os.path.join(path, "flux.safetensors"), params)


# ----------------------------------------------------------------------------------------------


def trainable_adapters(transformer, rank: int) -> list:
    """Freeze the base, add fresh 'default' + 'cond' adapters; their parameters, in fp32 (master
    weights even when the base is bf16)."""
    transformer.requires_grad_(False)
    add_seg2any_adapters(transformer, rank, init=True)
    trainable = [p for n, p in transformer.named_parameters() if "lora_" in n]
    for p in trainable:
        p.requires_grad_(True)
        p.data = p.data.float()
    return trainable


def small_models(a, device):
    """The small model family (t2i pretraining or adapters on a t2i checkpoint), small VAE and T5."""
    if a.stage == "t2i":
        params = dict(TINY_FLUX)
        transformer = new_transformer(params, a.seed) if not a.base else load_flux(a.base)[0]
        trainable = list(transformer.parameters())
        lr = a.lr or 5e-4
    else:
        if not a.base:
            raise SystemExit("--stage seg2any needs --base (the model the adapters are trained on)")
        transformer, params = load_flux(a.base)
        trainable = trainable_adapters(transformer, a.rank)
        lr = a.lr or 1e-4
    models = frozen_encoders(a, device)
    models.transformer = transformer.to(device)
    models.guidance_default = a.guidance
    return transformer, params, trainable, lr, models


def trackers(report_to: str) -> list[str]:
    """accelerate trackers. 'auto': tensorboard, and wandb too when it is installed (offline, into
    OUT/wandb, unless a wandb login or WANDB_MODE says otherwise, so a run never stops at a prompt)."""
    if report_to == "none":
        return []
    if report_to != "auto":
        return [t.strip() for t in report_to.split(",") if t.strip()]
    import importlib.util

    found = []
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        found.append("tensorboard")
    else:
        log.warning("tensorboard is not installed: no training curves (pip install tensorboard)")
    if importlib.util.find_spec("wandb"):
        found.append("wandb")
    return found


def wandb_offline_unless_configured() -> None:
    """wandb without an API key would ask for one on the terminal; log offline instead (``wandb sync`` uploads later)."""
    netrc = os.path.join(os.path.expanduser("~"), ".netrc")
    logged_in = os.path.isfile(netrc) and "api.wandb.ai" in open(netrc).read()
    if not (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") or logged_in):
        os.environ["WANDB_MODE"] = "offline"


def make_optimizer(a, params, lr, device):
    if a.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=a.weight_decay, eps=1e-8)
    if device.type != "cuda":
        raise SystemExit(f"--optimizer adamw8bit needs a CUDA device (bitsandbytes' 8-bit AdamW); this run is on {device}")
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise SystemExit("--optimizer adamw8bit needs bitsandbytes: pip install bitsandbytes") from e
    return bnb.optim.AdamW8bit(params, lr=lr, betas=(0.9, 0.999), weight_decay=a.weight_decay, eps=1e-8)


def peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv=None):
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if a.base_quant != "none" and a.stage != "seg2any":
        raise SystemExit("--base-quant is for --stage seg2any (a frozen base under adapters); t2i trains the base itself")
    log_with = trackers(a.report_to)
    kwargs = []
    if a.base_quant != "none":
        from accelerate.utils import DistributedDataParallelKwargs

        # the quantised weights are buffers that every rank computes from the same file: broadcasting
        # them from rank 0 before every forward (DDP's default) would move the whole base each step
        kwargs.append(DistributedDataParallelKwargs(broadcast_buffers=False))
    acc = Accelerator(mixed_precision=mixed_precision(a), gradient_accumulation_steps=a.grad_accum,
                      log_with=log_with or None, project_dir=a.out, kwargs_handlers=kwargs)  # fmt: skip
    check_quant_available(a.base_quant, acc.device)
    deepspeed = acc.state.deepspeed_plugin is not None
    if deepspeed:
        # our loader is not passed to prepare(); DeepSpeed needs the per-GPU batch from us
        acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = a.batch_size
    set_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    if acc.is_main_process:
        with open(os.path.join(a.out, "args.json"), "w") as f:
            json.dump(vars(a), f, indent=1)
    device = acc.device

    if a.base and os.path.isdir(a.base):
        # FLUX.1-dev (diffusers layout): its own VAE, T5, CLIP and tokenizers; adapters only
        if a.stage != "seg2any":
            raise SystemExit("a diffusers FLUX folder as --base is for --stage seg2any (adapters on a frozen model)")
        from diffusers import FluxTransformer2DModel

        dtype = torch.bfloat16 if acc.mixed_precision == "bf16" else torch.float32
        models = frozen_encoders(a, device, dtype)
        # a quantised base stays on the CPU until it is quantised (NF4: layer by layer onto the GPU),
        # so the full bf16 transformer never has to fit the card
        transformer = FluxTransformer2DModel.from_pretrained(a.base, subfolder="transformer", torch_dtype=dtype)
        transformer.to("cpu" if a.base_quant != "none" else device)
        models.transformer, models.guidance_default, params = transformer, a.guidance, None
        trainable = trainable_adapters(transformer, a.rank)
        lr = a.lr or 1e-4
    else:
        transformer, params, trainable, lr, models = small_models(a, device)
    compute_dtype = transformer.dtype
    if a.base_quant != "none":
        n = quantize_base(transformer, a.base_quant, device, compute_dtype)
        transformer.to(device)
        log.info("frozen base: %d Linear weights stored as %s", n, a.base_quant)
    net = Seg2AnyFlux(transformer, gradient_checkpointing=a.gradient_checkpointing)
    opt = make_optimizer(a, trainable, lr, device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, a.warmup)))
    full = precomputed_dataset(a) if a.precomputed else build_dataset(a)
    val_layouts, full = validation_split(a, full)
    dataset = Robust(full)
    enc = Encoder(models, a.cond_scale_factor, a.resolution, not a.no_condition, int(a.cache_gb * 2**30))
    backend = resolve_backend("auto", device)

    if a.bucket and a.precomputed:
        lengths = full.dataset.lengths()[: len(dataset)] if isinstance(full, torch.utils.data.Subset) else full.lengths()
        batches = BucketBatchSampler(lengths, a.batch_size, num_replicas=acc.num_processes, rank=acc.process_index, seed=a.seed)
    elif a.bucket:
        count = lambda s: sample_lengths(s, models.t5_ids, a.resolution, a.cond_scale_factor, not a.no_condition)  # noqa: E731
        lengths = bucket_lengths(
            dataset, count, a.cache_dir or os.path.join(a.out, "cache"), dataset_signature(a, len(dataset)), acc
        )
        batches = BucketBatchSampler(lengths, a.batch_size, num_replicas=acc.num_processes, rank=acc.process_index, seed=a.seed)
    else:
        sampler = torch.utils.data.DistributedSampler(dataset, acc.num_processes, acc.process_index, shuffle=True, seed=a.seed)
        batches = torch.utils.data.BatchSampler(sampler, a.batch_size, drop_last=True)
    batches = SkipBatches(batches)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate_samples, num_workers=a.workers)
    net, opt, sched = acc.prepare(net, opt, sched)
    register_trainable_only(acc, lambda: acc.unwrap_model(net).t)

    gen = torch.Generator().manual_seed(a.seed + acc.process_index)
    step, epoch, losses = 0, 0, []
    if a.resume:
        path = latest_checkpoint(a.out) if a.resume == "latest" else a.resume
        if not path and checkpoint_steps(a.out):
            log.warning("%s has checkpoint folders but none is complete (no trainer_state.json): starting afresh", a.out)
        if path:
            check_process_count(path, acc.num_processes)
            acc.load_state(path, **({"load_module_strict": False} if deepspeed else {}))
            st = read_trainer_state(path, acc.process_index, gen)
            step, epoch, batches.skip, losses = st["step"], st["epoch"], st["batches"], st["loss"]
            log.info("resumed from %s at step %d (epoch %d, %d batches of it done)", path, step, epoch, st["batches"])
    if log_with:
        if "wandb" in log_with:
            wandb_offline_unless_configured()
        config = {k: v for k, v in vars(a).items() if isinstance(v, (int, float, str, bool))}
        acc.init_trackers("seg2any", config=config, init_kwargs={"wandb": {"dir": a.out}})

    from tqdm import tqdm

    bar = tqdm(total=a.steps, initial=step, disable=not acc.is_local_main_process, desc=a.stage)
    start, t_start = step, time.time()
    t_step, dropped, without_cond, last_good, micro = time.time(), 0, 0, None, []
    seconds: list[float] = []
    done = step >= a.steps
    while not done:
        batches.set_epoch(epoch)
        consumed = batches.skip
        for samples, n_bad in loader:
            consumed += 1
            dropped += n_bad
            weight = 1.0
            if not samples:
                if acc.num_processes == 1:
                    continue
                # the other ranks run this step (DDP waits for every rank): take part with a zero-weighted batch
                samples, weight = last_good or first_good(dataset), 0.0
            last_good = samples
            with acc.accumulate(net):
                loss, n_cond = training_loss(net, enc, samples, a.stage, a.mode, a.guidance, backend, gen, device, compute_dtype)
                without_cond += n_cond == 0 and a.stage == "seg2any"
                micro.append(loss.detach().float())
                acc.backward(loss * weight)
                grad_norm = None
                if acc.sync_gradients:
                    grad_norm = acc.clip_grad_norm_(trainable, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            if not acc.sync_gradients:
                continue
            step += 1
            mean_loss = acc.reduce(torch.stack(micro).mean(), "mean").item()  # over micro-batches and ranks
            micro = []
            losses.append(mean_loss)
            now = time.time()
            seconds.append(now - t_step)
            t_step = now
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", skipped=dataset.skipped)
            if log_with:
                stats = {"loss": mean_loss, "lr": sched.get_last_lr()[0], "s_per_step": seconds[-1],
                         "samples_per_s": a.batch_size * a.grad_accum * acc.num_processes / max(seconds[-1], 1e-9),
                         "peak_memory_mb": peak_memory_mb(device)}  # fmt: skip
                if grad_norm is not None:
                    stats["grad_norm"] = float(grad_norm)
                acc.log(stats, step=step)
            out_of_time = a.max_minutes is not None and (time.time() - t_start) / 60 > a.max_minutes
            if step % a.save_every == 0 or step >= a.steps or out_of_time:
                ranks = acc.gather(torch.tensor([[epoch, consumed]], device=device)).tolist()
                if any(r != ranks[0] for r in ranks):  # a rank skipped batches the others used: data out of step
                    log.warning("ranks are at different data positions (epoch, batches): %s", ranks)
                position = {"step": step, "epoch": epoch, "batches": consumed, "ranks": ranks, "loss": losses}
                save(acc, transformer, a, position, params, gen, deepspeed)
            if acc.is_main_process and (step % a.val_every == 0 or step >= a.steps):
                validate(models, val_layouts, a, step, acc if log_with else None)
            if step >= a.steps or out_of_time:
                done = True
                break
        else:
            epoch += 1
    bar.close()
    counts = [without_cond, enc.truncated.entity, enc.truncated.global_, dropped]
    totals = acc.reduce(torch.tensor(counts, device=device), "sum").tolist()
    if log_with:
        acc.end_training()
    if acc.is_main_process:
        timed = seconds[1:] or seconds  # the first step includes warm-up
        summary = {
            "steps": step,
            "start_step": start,
            "processes": acc.num_processes,
            "seconds": time.time() - t_start,
            "seconds_per_step": float(np.mean(timed)) if timed else None,
            "peak_memory_mb": peak_memory_mb(device),
            "skipped_samples": int(totals[3]),  # dropped from training batches, all ranks
            "batches_without_condition_tokens": int(totals[0]),
            "truncated_captions": {"entity": int(totals[1]), "global": int(totals[2]), "examples": enc.truncated.examples},
            "loss": losses,
            "validation_samples": [name for name, _ in val_layouts],
        }
        with open(os.path.join(a.out, "train_log.json"), "w") as f:
            json.dump(summary, f)
        if dataset.skipped:
            log.warning("skipped %d corrupt/inconsistent samples: %s", dataset.skipped, dict(dataset.reasons.most_common(5)))
        if totals[1] or totals[2]:
            log.warning("captions cut to the trained lengths (50 T5 tokens per entity, 512 global): %d entity, %d global",
                        totals[1], totals[2])  # fmt: skip
    return os.path.join(a.out, f"checkpoint-{step}")


def precomputed_dataset(a):
    """The shards of ``python -m training.precompute``, refused when made from other data or encoders."""
    from .shards import ShardDataset

    ds = ShardDataset(a.precomputed)
    want = json.loads(json.dumps(feature_signature(a, ds.n)))
    if ds.manifest["signature"] != want:
        diff = sorted(k for k in want if ds.manifest["signature"].get(k) != want[k])
        raise SystemExit(f"{a.precomputed} was precomputed with other data or encoder flags (differs in: {', '.join(diff)})")
    return ds


def first_good(dataset) -> list:
    """A stand-in batch for a rank whose first batch failed to load (it runs with weight 0)."""
    for i in range(len(dataset)):
        s = dataset[i]
        if s is not None:
            return [s]
    raise RuntimeError("no sample of the dataset loads; see the warnings above")


def save(acc, transformer, a, position, params, gen, deepspeed):
    """Trainable state + data position + RNG (resumable), the exported artifact, then the retention limit."""
    path = os.path.join(a.out, f"checkpoint-{position['step']}")
    acc.save_state(path, **({"exclude_frozen_parameters": True} if deepspeed else {}))
    save_rng(path, acc.process_index, gen)
    acc.wait_for_everyone()
    if acc.is_main_process:
        if a.stage == "t2i" or deepspeed:  # otherwise the trainable state saved above is the official LoRA layout
            export(acc.unwrap_model(transformer), a.stage, path, params)
        write_trainer_state(path, position)
        prune_checkpoints(a.out, a.checkpoints_total_limit)
        log.info("saved %s", path)
    acc.wait_for_everyone()


def validation_split(a, dataset):
    """Held-out (name, layout) pairs for validation images: synthetic ones from another seed, or
    the last ``--validation-samples`` items of a folder / SACap dataset (real layouts, real
    captions), which training then does not see."""
    if a.dataset == "synthetic":
        held = SyntheticShapes(4, resolution=a.resolution, seed=a.seed + 10_000)
        return [(f"held-out synthetic {i}", held[i].layout) for i in range(4)], dataset
    n = min(a.val_holdout, len(dataset) - 1)
    if n <= 0:
        return [], dataset
    keep = len(dataset) - n
    held = []
    for i in range(keep, len(dataset)):
        try:
            sample = dataset[i]
            held.append((sample.key, sample.layout))
        except Exception as e:  # a bad item is not worth ending the run for
            log.warning("validation item %d not usable: %s", i, e)
    return held, torch.utils.data.Subset(dataset, range(keep))


@torch.no_grad()
def validate(models, held, a, step, acc=None):
    """One image per held-out layout: saved as a strip PNG and logged to every image-capable tracker."""
    if not held:
        return
    from PIL import Image

    was = models.transformer.training
    models.transformer.eval()
    imgs = []
    for i, (name, lay) in enumerate(held):
        try:
            imgs += generate(
                models,
                lay,
                steps=a.val_steps,
                seed=i,
                guidance=a.guidance,
                mode=a.mode,
                cond_scale_factor=a.cond_scale_factor,
                use_entities=a.stage == "seg2any",
                use_condition=not a.no_condition,
            )
        except Exception as e:  # e.g. a held-out caption over the inference token budget: not worth the run
            log.warning("validation layout %s not rendered: %s", name, e)
    models.transformer.train(was)
    if not imgs:
        return
    grid = np.concatenate(imgs, axis=1)
    Image.fromarray(grid).save(os.path.join(a.out, f"validation_{step:06d}.png"))
    if acc is not None:
        log_images(acc, np.stack(imgs), step)


def log_images(acc, images: np.ndarray, step: int) -> None:
    """(N, H, W, 3) uint8 validation images to tensorboard and wandb, under the tag ``validation``."""
    for tracker in acc.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_images("validation", images, step, dataformats="NHWC")
            tracker.writer.flush()
        elif tracker.name == "wandb":
            import wandb

            tracker.log({"validation": [wandb.Image(im) for im in images]}, step=step)


if __name__ == "__main__":
    main()
