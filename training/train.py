"""Train Seg2Any adapters (or, for the small-scale experiment, the base text-to-image model).

    # Seg2Any adapters on a base FLUX (the official recipe: both adapters, rank r, lr 1e-4, AdamW)
    accelerate launch --config_file training/configs/accelerate_multi_gpu.yaml -m training.train \\
        --stage seg2any --dataset sacap --parquet anno_train.parquet --image-root SA-1B/ \\
        --base FLUX.1-dev/ --resolution 1024 --cond-scale-factor 2 --rank 64 --out runs/sacap

    # the small-scale experiment's two stages on synthetic shapes (CPU is fine)
    python -m training.train --stage t2i --dataset synthetic --out runs/base
    python -m training.train --stage seg2any --dataset synthetic --base runs/base/flux.safetensors --out runs/s2a

Writes the official checkpoint layout (checkpoint-<step>/default|cond/pytorch_lora_weights.safetensors,
loadable by the official code and by Load Seg2Any LoRA) next to accelerate's resumable state.
Latents and text features of the frozen VAE / T5 are cached per sample (the official trainer
recomputes them every step; the values are the same, the time is not).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import time

import numpy as np
import torch
import torch.nn.functional as F

from seg2any.adapters.diffusers import Seg2AnyFlux, add_seg2any_adapters, lora_from_peft
from seg2any.adapters.diffusers_pipeline import Models, generate
from seg2any.attention.kernels import resolve_backend
from seg2any.conditioning.batching import condition_inputs, kernel_for, layer_rules, pad_text, plan_rows
from seg2any.conditioning.condition_tokens import ConditionTokens, keep_mask_from_contour, pack_latents
from seg2any.conditioning.contour import entity_contour_map
from seg2any.conditioning.settings import Seg2AnyConditioning
from seg2any.conditioning.t5_tokens import T5Tokenizer
from seg2any.flux.lora_format import write_checkpoint
from seg2any.layout.layout import Layout

from .data import BucketBatchSampler, FolderDataset, Robust, SACapDataset, SyntheticShapes, collate_samples
from .models import TINY_FLUX, load_flux, load_t5, load_vae, new_t5, new_transformer, save_flux, spiece_path

log = logging.getLogger("seg2any.train")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["t2i", "seg2any"], default="seg2any")
    ap.add_argument("--dataset", choices=["synthetic", "folder", "sacap"], default="synthetic")
    ap.add_argument("--data-root", help="folder dataset root (NAME.png + NAME.seg.png + NAME.json)")
    ap.add_argument("--parquet", help="SACap-1M annotation parquet")
    ap.add_argument("--image-root", help="SA-1B root (images and per-image JSON)")
    ap.add_argument("--synthetic-size", type=int, default=6000)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--base", help="base FLUX: a .safetensors written by the t2i stage, or a diffusers folder (FLUX.1-dev)")
    ap.add_argument("--vae", help="VAE .safetensors (the small model's) or a diffusers FLUX folder")
    ap.add_argument("--t5", help="T5 .safetensors (the small model's); default: a fresh frozen random T5")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--lr", type=float, default=None, help="default: 1e-4 for adapters (official), 5e-4 for t2i")
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (official: 64 on FLUX.1-dev)")
    ap.add_argument("--mode", choices=["hard", "base", "place"], default="hard")
    ap.add_argument("--cond-scale-factor", type=int, default=1)
    ap.add_argument("--no-condition", action="store_true", help="train without condition tokens (ablation)")
    ap.add_argument("--guidance", type=float, default=1.0, help="embedded guidance while training (official: 1)")
    ap.add_argument(
        "--mixed-precision", choices=["no", "bf16", "fp16"], default=None, help="default: the accelerate config's (else no)"
    )
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--bucket", action="store_true", help="bucket batches by condition/text token counts (official GroupSampler)")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--val-steps", type=int, default=16)
    ap.add_argument("--resume", help="a checkpoint-<step> folder, or 'latest'")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this much wall time")
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------------------------
# data


def build_dataset(a):
    if a.dataset == "synthetic":
        return SyntheticShapes(a.synthetic_size, resolution=a.resolution, seed=a.seed)
    if a.dataset == "folder":
        if not a.data_root:
            raise SystemExit("--dataset folder needs --data-root")
        ds = FolderDataset(a.data_root, a.resolution)
        if ds.missing:
            log.warning("folder dataset: %d item(s) lack a file and are not used, e.g. %s", len(ds.missing), ds.missing[:3])
        return ds
    if not (a.parquet and a.image_root):
        raise SystemExit("--dataset sacap needs --parquet and --image-root")
    return SACapDataset(a.parquet, a.image_root, a.resolution)


class Encoder:
    """Frozen VAE + T5 features, cached per sample key (values identical to recomputing)."""

    def __init__(self, models: Models, scale: int, resolution: int, use_condition: bool):
        self.m = models
        self.scale = scale
        self.res = resolution
        self.use_condition = use_condition
        self.latents: dict[str, torch.Tensor] = {}
        self.conds: dict[str, ConditionTokens] = {}

    @torch.no_grad()
    def images(self, samples) -> torch.Tensor:
        todo = [s for s in samples if s.key not in self.latents]
        if todo:
            x = torch.stack([torch.from_numpy(s.image.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1) for s in todo])
            vae = self.m.vae
            z = vae.encode(x.to(next(vae.parameters()).device, next(vae.parameters()).dtype)).latent_dist.mean.float().cpu()
            for s, zi in zip(todo, self.m.process_in(z)):
                self.latents[s.key] = zi
        return torch.stack([self.latents[s.key] for s in samples])

    @torch.no_grad()
    def condition(self, sample) -> ConditionTokens | None:
        if not self.use_condition or not sample.layout.entities:
            return None
        c = self.conds.get(sample.key)
        if c is None:
            contour = entity_contour_map(sample.layout.masks, self.res, self.res, self.scale)
            x = torch.from_numpy(contour.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
            vae = self.m.vae
            z = vae.encode(x.to(next(vae.parameters()).device, next(vae.parameters()).dtype)).latent_dist.mean.float().cpu()
            c = ConditionTokens(z, keep_mask_from_contour(contour), self.scale, (self.res, self.res))
            self.conds[sample.key] = c
        return c

    def info(self, sample, stage: str, mode: str):
        lay = sample.layout
        if stage == "t2i":
            lay = Layout(lay.global_prompt, (), lay.height, lay.width)
        enc = self.m.encode(lay.global_prompt, lay.prompts, [e.label for e in lay.entities])
        cond = self.condition(sample) if stage == "seg2any" else None
        return Seg2AnyConditioning(lay, enc.text_lens, cond, mode), enc


def sigma_like_official(n: int, generator) -> torch.Tensor:
    """sigma uniform on {0.001, ..., 1.000} (u ~ U(0,1) indexing the 1000 training timesteps)."""
    idx = torch.floor(torch.rand(n, generator=generator) * 1000).long()
    return (1000 - idx).float() / 1000.0


def training_loss(net, enc: Encoder, samples, stage, mode, guidance, backend, generator, device, dtype):
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
    return F.mse_loss(pred.float(), target.float())


# ----------------------------------------------------------------------------------------------
# checkpoints


def latest_checkpoint(out: str) -> str | None:
    best, step = None, -1
    if os.path.isdir(out):
        for d in os.listdir(out):
            m = re.fullmatch(r"checkpoint-(\d+)", d)
            if m and int(m.group(1)) > step:
                best, step = os.path.join(out, d), int(m.group(1))
    return best


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
    vae = load_vae(a.vae).to(device).eval().requires_grad_(False)
    t5 = (load_t5(a.t5) if a.t5 else new_t5(a.seed)).to(device).eval().requires_grad_(False)
    tok = T5Tokenizer(spiece_path())
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
    transformer.to(device)
    models = Models(transformer, vae, t5, tok.ids, guidance_default=a.guidance)
    return transformer, params, trainable, lr, models


def main(argv=None):
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    acc = Accelerator(mixed_precision=a.mixed_precision, gradient_accumulation_steps=a.grad_accum)
    if acc.state.deepspeed_plugin is not None:
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
        from seg2any.adapters.diffusers_pipeline import load_flux_dev_base

        dtype = torch.bfloat16 if acc.mixed_precision == "bf16" else torch.float32
        models = load_flux_dev_base(a.base, device, dtype)
        for m in (models.vae, models.t5, models.clip):
            m.requires_grad_(False)
        models.guidance_default = a.guidance
        transformer, params = models.transformer, None
        trainable = trainable_adapters(transformer, a.rank)
        lr = a.lr or 1e-4
    else:
        transformer, params, trainable, lr, models = small_models(a, device)
    net = Seg2AnyFlux(transformer, gradient_checkpointing=a.gradient_checkpointing)
    opt = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.999), weight_decay=a.weight_decay, eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, a.warmup)))
    dataset = Robust(build_dataset(a))
    enc = Encoder(models, a.cond_scale_factor, a.resolution, not a.no_condition)
    backend = resolve_backend("auto", device)

    if a.bucket:
        lengths = token_lengths(dataset, enc, a)
        sampler = BucketBatchSampler(lengths, a.batch_size, num_replicas=acc.num_processes, rank=acc.process_index, seed=a.seed)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_samples, num_workers=a.workers)
    else:
        sampler = torch.utils.data.DistributedSampler(dataset, acc.num_processes, acc.process_index, shuffle=True, seed=a.seed)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=a.batch_size, sampler=sampler, collate_fn=collate_samples, num_workers=a.workers, drop_last=True
        )
    net, opt, sched = acc.prepare(net, opt, sched)

    start = 0
    if a.resume:
        path = latest_checkpoint(a.out) if a.resume == "latest" else a.resume
        if path:
            acc.load_state(path)
            start = int(re.search(r"checkpoint-(\d+)", path).group(1))
            log.info("resumed from %s at step %d", path, start)
    gen = torch.Generator().manual_seed(a.seed + start + acc.process_index)
    val_layouts = validation_layouts(a)

    from tqdm import tqdm

    bar = tqdm(total=a.steps, initial=start, disable=not acc.is_local_main_process, desc=a.stage)
    t_start = time.time()
    step, epoch, dropped = start, 0, 0
    losses: list[float] = []
    done = False
    while not done:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for samples, n_bad in loader:
            dropped += n_bad
            if not samples:
                continue
            with acc.accumulate(net):
                loss = training_loss(net, enc, samples, a.stage, a.mode, a.guidance, backend, gen, device, transformer.dtype)
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(trainable, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            if not acc.sync_gradients:
                continue
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", skipped=dataset.skipped)
            out_of_time = a.max_minutes is not None and (time.time() - t_start) / 60 > a.max_minutes
            if step % a.save_every == 0 or step >= a.steps or out_of_time:
                save(acc, transformer, a, step, params)
            if acc.is_main_process and (step % a.val_every == 0 or step >= a.steps):
                validate(models, val_layouts, a, step)
            if step >= a.steps or out_of_time:
                done = True
                break
        epoch += 1
    bar.close()
    if acc.is_main_process:
        with open(os.path.join(a.out, "train_log.json"), "w") as f:
            json.dump({"steps": step, "seconds": time.time() - t_start, "skipped_samples": dataset.skipped, "loss": losses}, f)
        if dataset.skipped:
            log.warning("skipped %d corrupt/inconsistent samples: %s", dataset.skipped, dict(dataset.reasons.most_common(5)))
    return os.path.join(a.out, f"checkpoint-{step}")


def save(acc, transformer, a, step, params):
    path = os.path.join(a.out, f"checkpoint-{step}")
    acc.save_state(path)
    if acc.is_main_process:
        export(acc.unwrap_model(transformer), a.stage, path, params)
        log.info("saved %s", path)


def token_lengths(dataset, enc: Encoder, a) -> list[tuple[int, int]]:
    """(condition tokens, text tokens) per sample for the bucket sampler (counted, not encoded)."""
    out = []
    for i in range(len(dataset)):
        s = dataset[i]
        if s is None:
            out.append((0, 0))
            continue
        txt = sum(len(enc.m.t5_ids(p)) for p in [s.layout.global_prompt, *s.layout.prompts] if p)
        cond = 0
        if not a.no_condition and s.layout.entities:
            contour = entity_contour_map(s.layout.masks, a.resolution, a.resolution, a.cond_scale_factor)
            cond = int(keep_mask_from_contour(contour).sum())
        out.append((cond, txt))
    return out


def validation_layouts(a, n=4):
    if a.dataset != "synthetic":
        return []
    held = SyntheticShapes(n, resolution=a.resolution, seed=a.seed + 10_000)
    return [held[i].layout for i in range(n)]


@torch.no_grad()
def validate(models, layouts, a, step):
    if not layouts:
        return
    from PIL import Image

    was = models.transformer.training
    models.transformer.eval()
    imgs = []
    for i, lay in enumerate(layouts):
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
    models.transformer.train(was)
    grid = np.concatenate(imgs, axis=1)
    Image.fromarray(grid).save(os.path.join(a.out, f"validation_{step:06d}.png"))


if __name__ == "__main__":
    main()
