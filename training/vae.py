"""Train the small VAE on the synthetic data and calibrate its latents to FLUX's latent format.

ComfyUI applies FLUX's fixed latent shift/scale (0.1159, 0.3611) to whatever VAE the model is
used with, so after training we fold an affine map into the VAE (its quant_conv mean channels
and its post_quant_conv) that makes (z - 0.1159) * 0.3611 zero-mean and unit-variance per channel.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from seg2any.adapters.diffusers_pipeline import FLUX_SCALE, FLUX_SHIFT

from .models import new_vae

log = logging.getLogger("seg2any.train")


def _batch(dataset, idx, crop, rng):
    imgs = []
    for i in idx:
        s = dataset[int(i)]
        img = s.image
        if crop and crop < img.shape[0]:
            y, x = rng.integers(0, img.shape[0] - crop + 1, size=2)
            img = img[y : y + crop, x : x + crop]
        imgs.append(torch.from_numpy(img.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    return torch.stack(imgs)


def train_vae(dataset, steps=800, batch=16, lr=1e-3, crop=64, kl=1e-6, seed=0, device="cpu", progress=True):
    """MSE + L1 reconstruction with a tiny KL term; random crops keep it cheap (fully convolutional)."""
    vae = new_vae(seed).to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(seed)
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="vae")
    t0 = time.time()
    for _step in it:
        x = _batch(dataset, rng.integers(0, len(dataset), size=batch), crop, rng).to(device)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        loss = (rec - x).pow(2).mean() + 0.5 * (rec - x).abs().mean() + kl * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress:
            it.set_postfix(loss=f"{loss.item():.4f}")
    log.info("vae: %d steps in %.0fs, last loss %.4f", steps, time.time() - t0, loss.item())
    return vae.eval()


@torch.no_grad()
def calibrate(vae, dataset, n=256, batch=32, device="cpu"):
    """Fold per-channel affine maps so the model-space latents are ~N(0, 1) under FLUX's format."""
    zs = []
    for s in range(0, min(n, len(dataset)), batch):
        x = _batch(dataset, range(s, min(s + batch, n, len(dataset))), None, None).to(device)
        zs.append(vae.encode(x).latent_dist.mean.cpu())
    z = torch.cat(zs)
    mu = z.mean(dim=(0, 2, 3))
    sd = z.std(dim=(0, 2, 3)).clamp(min=1e-4)
    # z' = a z + c with (z' - shift) * scale = (z - mu) / sd
    a = 1.0 / (sd * FLUX_SCALE)
    c = FLUX_SHIFT - mu * a
    ch = z.shape[1]
    qc, pq = vae.quant_conv, vae.post_quant_conv
    qc.weight[:ch] *= a.view(-1, 1, 1, 1).to(qc.weight)
    qc.bias[:ch] = qc.bias[:ch] * a.to(qc.bias) + c.to(qc.bias)
    # logvar channels: var scales by a^2
    qc.bias[ch:] += (2 * torch.log(a)).to(qc.bias)
    # post_quant_conv sees z' = a z + c; feed it (z' - c) / a
    w = pq.weight.clone()
    pq.bias += -(w[:, :, 0, 0] * (c / a).to(w)[None]).sum(1)
    pq.weight[:] = w / a.view(1, -1, 1, 1).to(w)
    return vae


@torch.no_grad()
def reconstruction_psnr(vae, dataset, n=64, device="cpu") -> float:
    x = _batch(dataset, range(min(n, len(dataset))), None, None).to(device)
    rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    mse = ((rec - x) / 2).pow(2).mean().item()
    return 10 * np.log10(1.0 / max(mse, 1e-12))
