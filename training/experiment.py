"""The small-scale experiment: does our Seg2Any implementation do what the paper claims?

    python -m training.experiment --out runs/experiment            # ~1 h on a 2-core CPU
    python -m training.experiment --out runs/experiment --profile gpu --device cuda

1. a small VAE is trained on synthetic coloured shapes and calibrated to FLUX's latent format;
2. a small FLUX-architecture text-to-image model is pretrained with global captions only;
3. Seg2Any adapters ('default' + 'cond', hard mode, condition tokens) are trained on it;
4. on held-out layouts, images are generated for: the base model with the global caption only,
   Seg2Any base mode, Seg2Any hard mode, and Seg2Any hard mode without condition tokens (the same
   adapters, condition tokens left out at inference), and scored exactly by colour segmentation:
   mask-adherence mIoU, colour and texture accuracy, and leakage (another entity's colour inside
   a region);
5. training/RESULTS.md gets the table, sample grids and the command.
"""

from __future__ import annotations

import os

# CPU numerics pinned before torch loads: without this the same command gives other figures on another
# x86 machine, because ATen, MKL and oneDNN pick kernels by instruction set (AVX-512 or not, Intel or AMD)
# and a training run amplifies the last-bit differences. AVX2 exists on every x86 machine we run on.
for _k, _v in {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}.items():
    os.environ.setdefault(_k, _v)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

PROFILES = {
    # steps, batch, synthetic samples; sized so the whole run fits ~1 h on 2 CPU cores
    "cpu": dict(vae_steps=1000, t2i_steps=1500, t2i_batch=16, s2a_steps=900, s2a_batch=16, n_data=6000, eval_n=48, eval_steps=20),
    "smoke": dict(vae_steps=20, t2i_steps=10, t2i_batch=4, s2a_steps=10, s2a_batch=4, n_data=64, eval_n=4, eval_steps=4),
    "gpu": dict(
        vae_steps=4000, t2i_steps=20000, t2i_batch=64, s2a_steps=8000, s2a_batch=64, n_data=50000, eval_n=200, eval_steps=28
    ),
}
# (row name, adapters to use, generate() options)
CONFIGS = [
    ("base model, global caption only", "main", dict(use_entities=False)),
    ("Seg2Any base mode (trained in base mode)", "base", dict(mode="base")),
    ("Seg2Any hard mode (trained in hard mode)", "main", dict(mode="hard")),
    ("Seg2Any hard mode, no condition tokens (trained without)", "nocond", dict(mode="hard", use_condition=False)),
    ("hard-mode adapters, condition tokens dropped at inference", "main", dict(mode="hard", use_condition=False)),
    ("hard-mode adapters, run in base mode", "main", dict(mode="base")),
]
# adapter runs: name -> (folder, extra trainer flags)
ADAPTER_RUNS = {
    "main": ("seg2any", ["--mode", "hard"]),
    "base": ("seg2any_base", ["--mode", "base"]),
    "nocond": ("seg2any_nocond", ["--mode", "hard", "--no-condition"]),
}


def make_deterministic(threads: int) -> dict:
    """Everything torch lets us fix for a repeatable run; returns what the results must quote."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads)  # intra-op reductions split work by thread count
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def stage_vae(out, p, device, log):
    from .data import SyntheticShapes
    from .models import save_vae
    from .vae import calibrate, reconstruction_psnr, train_vae

    path = os.path.join(out, "vae.safetensors")
    stats = os.path.join(out, "vae.json")
    if not os.path.exists(path):
        ds = SyntheticShapes(min(p["n_data"], 4000), resolution=128, seed=1)
        vae = train_vae(ds, steps=p["vae_steps"], device=device, seed=log["seed"])
        calibrate(vae, ds, device=device)
        with open(stats, "w") as f:
            json.dump({"psnr": reconstruction_psnr(vae, ds, device=device)}, f)
        save_vae(vae, path)
    if os.path.exists(stats):
        with open(stats) as f:
            log["vae_psnr"] = json.load(f)["psnr"]
    return path


def stage_times(out) -> dict:
    path = os.path.join(out, "stage_minutes.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def timed(out, name, fn, *args):
    """Run a stage and add its wall time to out/stage_minutes.json (kept across resumed runs)."""
    t0 = time.time()
    result = fn(*args)
    times = stage_times(out)
    times[name] = times.get(name, 0.0) + (time.time() - t0) / 60
    with open(os.path.join(out, "stage_minutes.json"), "w") as f:
        json.dump(times, f, indent=1)
    return result


def run_train(args: list[str]) -> str:
    from .train import main as train_main

    return train_main(args)


def eval_layouts(n, seed=12345):
    """Held-out scenes with at least two entities of distinct colours (so colours identify entities)."""
    from .data import SyntheticShapes

    ds = SyntheticShapes(n * 4, resolution=128, seed=seed)
    picked = []
    for i in range(len(ds)):
        attrs = ds.attributes(i)
        if len(attrs) >= 2 and len({a["color"] for a in attrs}) == len(attrs):
            picked.append((ds[i], attrs, ds.background(i)[1]))
        if len(picked) == n:
            break
    return picked


@torch.no_grad()
def evaluate(model_sets, picked, steps, out_dir, log, seed=0):
    from PIL import Image

    from seg2any.adapters.diffusers_pipeline import generate

    from .metrics import aggregate, shape_metrics

    rows, grids = [], {}
    for name, which, kw in CONFIGS:
        models = model_sets[which]
        t0 = time.time()
        records, imgs = [], []
        strengths = {"default": 0.0, "cond": 0.0} if not kw.get("use_entities", True) else None
        for i, (sample, attrs, bg) in enumerate(picked):
            img = generate(
                models,
                sample.layout,
                steps=steps,
                seed=i + 1000 * seed,
                guidance=1.0,
                cond_scale_factor=1,
                strengths=strengths,
                **kw,
            )[0]
            records += shape_metrics(img, sample.layout, attrs, bg)[0]
            if i < 8:
                imgs.append(img)
        agg = aggregate(records)
        agg["seconds"] = time.time() - t0
        rows.append((name, agg))
        grids[name] = np.concatenate(imgs, axis=1)
        log.setdefault("eval", {})[name] = agg
    # sample grid: one row per configuration, the layouts' colour maps on top
    from seg2any.layout.preview import render_layout

    tops = [render_layout(s.layout, legend_width=0)[:, : s.layout.width] for s, _, _ in picked[:8]]
    real = [s.image for s, _, _ in picked[:8]]
    sheet = np.concatenate(
        [np.concatenate(tops, axis=1), np.concatenate(real, axis=1)] + [grids[n] for n, _, _ in CONFIGS], axis=0
    )
    Image.fromarray(sheet).save(os.path.join(out_dir, "samples.png"))
    return rows


def write_results(path, rows, log, cmd, sheet_rel):
    lines = [
        "# Small-scale experiment: Seg2Any on a small FLUX-architecture model",
        "",
        "Reproduce (everything from scratch: VAE, base model, adapters, evaluation):",
        "",
        "```",
        cmd,
        "```",
        "",
        f"Profile `{log['profile']}`: {log['params']}. Device: {log['device']}; total wall time {log['minutes']:.0f} min "
        f"({', '.join(f'{k} {v:.1f}' for k, v in log.get('stage_minutes', {}).items())}).",
        f"Base model: {log.get('t2i_steps')} steps of text-to-image pretraining (global captions only); "
        f"adapters: {log.get('s2a_steps')} steps per run (rank {log.get('rank')}, lr 5e-4, condition tokens at cond_scale_factor 1).",
        f"VAE reconstruction PSNR on training images: {log.get('vae_psnr', float('nan')):.1f} dB.",
        "Machine: {cpu}, {threads} torch threads, torch {torch}, CPU kernels {cpu_capability} (pinned; see "
        "[RUNS.md](RUNS.md) for what varies between runs and machines).".format(**log.get("machine", {}))
        if log.get("machine")
        else "",
        "",
        f"Held-out layouts: {log['eval_n']} synthetic scenes with 2-4 shapes of distinct colours, {log['eval_steps']} sampling steps, "
        "one image per layout (seed = layout index). Scores are exact, by nearest-colour segmentation of the generated image:",
        "",
        "- **mIoU**: IoU between each entity's mask and the pixels of its colour, averaged over entities;",
        "- **colour acc.**: the majority colour inside the mask is the prompted colour;",
        "- **texture acc.**: plain vs striped/dotted from the share of the colour's second shade inside the mask;",
        "- **leakage**: share of a mask's pixels showing another entity's colour (lower is better).",
        "",
        "| configuration | mIoU | colour acc. | texture acc. | leakage | entities |",
        "|---|---|---|---|---|---|",
    ]
    for name, agg in rows:
        lines.append(
            f"| {name} | {agg['miou']:.3f} | {agg['colour_acc']:.3f} | {agg['texture_acc']:.3f} | {agg['leakage']:.3f} | {agg['n_entities']} |"
        )
    lines += [
        "",
        f"![samples]({sheet_rel})",
        "",
        "Rows of the sample sheet: the layouts (entity masks), the ground-truth scenes, then one row per configuration above.",
        "",
        "Notes: rows 2-4 are three separate adapter runs with the same data, steps and seed (base mode; hard mode; hard mode "
        "without condition tokens, the paper's ablation). The last two rows reuse the hard-mode adapters with the contour "
        "tokens left out, or with attribute isolation switched off, at inference. All rows share the same base weights.",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/experiment")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument(
        "--seed", type=int, default=0, help="shifts every random stream (VAE, T5, training, sampling); 0 is the published run"
    )
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (results depend on it; the published run used 2)")
    ap.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"))
    ap.add_argument("--package-demo", action="store_true", help="copy the trained model into seg2any/demo")
    a = ap.parse_args(argv)
    p = PROFILES[a.profile]
    os.makedirs(a.out, exist_ok=True)
    log = {"profile": a.profile, "params": p, "device": a.device, "rank": a.rank, "seed": a.seed}
    log["machine"] = make_deterministic(a.threads)
    vae = timed(a.out, "vae", stage_vae, a.out, p, a.device, log)
    t5_path = os.path.join(a.out, "t5.safetensors")
    if not os.path.exists(t5_path):
        from .models import new_t5, save_t5

        save_t5(new_t5(42 + a.seed), t5_path)
    common = [
        "--dataset",
        "synthetic",
        "--synthetic-size",
        str(p["n_data"]),
        "--vae",
        vae,
        "--t5",
        t5_path,
        "--resolution",
        "128",
        "--val-every",
        "1000000",
        "--seed",
        str(42 + a.seed),
        "--mixed-precision",  # fp32 as the published figures were made (the trainer's CUDA default is bf16)
        "no",
    ]
    base_dir = os.path.join(a.out, "base")
    base_ckpt = os.path.join(base_dir, f"checkpoint-{p['t2i_steps']}")
    if not os.path.exists(os.path.join(base_ckpt, "flux.safetensors")):
        timed(
            a.out,
            "base model (t2i)",
            run_train,
            [
                "--stage",
                "t2i",
                "--out",
                base_dir,
                "--steps",
                str(p["t2i_steps"]),
                "--batch-size",
                str(p["t2i_batch"]),
                "--warmup",
                "100",
                "--save-every",
                str(p["t2i_steps"]),
                *common,
            ],
        )
    log["t2i_steps"] = p["t2i_steps"]
    ckpts = {}
    for which, (folder, extra) in ADAPTER_RUNS.items():
        d = os.path.join(a.out, folder)
        ckpts[which] = os.path.join(d, f"checkpoint-{p['s2a_steps']}")
        if not os.path.exists(os.path.join(ckpts[which], "default")):
            timed(
                a.out,
                f"adapters ({which})",
                run_train,
                [
                    "--stage",
                    "seg2any",
                    "--out",
                    d,
                    "--base",
                    os.path.join(base_ckpt, "flux.safetensors"),
                    "--steps",
                    str(p["s2a_steps"]),
                    "--batch-size",
                    str(p["s2a_batch"]),
                    "--rank",
                    str(a.rank),
                    "--lr",
                    "5e-4",
                    "--save-every",
                    str(p["s2a_steps"]),
                    *extra,
                    *common,
                ],
            )
    log["s2a_steps"] = p["s2a_steps"]

    from seg2any.adapters.diffusers import load_lora_into
    from seg2any.adapters.diffusers_pipeline import Models
    from seg2any.conditioning.t5_tokens import T5Tokenizer
    from seg2any.flux.lora_format import load_checkpoint

    from .models import load_flux, load_t5, load_vae, spiece_path

    vae_m, t5_m, tok = load_vae(vae).eval(), load_t5(t5_path), T5Tokenizer(spiece_path()).ids
    model_sets = {}
    for which, ckpt in ckpts.items():
        transformer, params = load_flux(os.path.join(base_ckpt, "flux.safetensors"))
        load_lora_into(transformer, load_checkpoint(ckpt))
        model_sets[which] = Models(transformer.eval(), vae_m, t5_m, tok, guidance_default=1.0)
    picked = eval_layouts(p["eval_n"])
    log["eval_n"], log["eval_steps"] = len(picked), p["eval_steps"]
    rows = timed(a.out, "evaluation", evaluate, model_sets, picked, p["eval_steps"], a.out, log, a.seed)
    log["stage_minutes"] = stage_times(a.out)
    log["minutes"] = sum(log["stage_minutes"].values())
    with open(os.path.join(a.out, "log.json"), "w") as f:
        json.dump(log, f, indent=1, default=str)
    results_dir = os.path.dirname(a.results)
    sheet = os.path.join(results_dir, "results_samples.png")
    shutil.copyfile(os.path.join(a.out, "samples.png"), sheet)
    out_shown = os.path.relpath(a.out) if not os.path.relpath(a.out).startswith("..") else "runs/experiment"
    cmd = f"python -m training.experiment --out {out_shown} --profile {a.profile} --device {a.device}"
    if a.seed:
        cmd += f" --seed {a.seed}"
    write_results(a.results, rows, log, cmd, os.path.basename(sheet))
    for name, agg in rows:
        print(
            f"{name:45s} mIoU {agg['miou']:.3f} colour {agg['colour_acc']:.3f} texture {agg['texture_acc']:.3f} leakage {agg['leakage']:.3f}"
        )
    if a.package_demo:
        from .make_demo import package

        package(os.path.join(base_ckpt, "flux.safetensors"), ckpts["main"], vae, t5_path)
    return 0


if __name__ == "__main__":
    main()
