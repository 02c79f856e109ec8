"""Training speed and memory: one FaceX training step on the full SD1.5 architecture.

Random weights (speed does not depend on the values): the frozen SD1.5 UNet (859.5M),
CLIP ViT-L/14 (frozen, or fine-tuned with --finetune-clip) and the full-size FaceX
network, through the trainer's own TrainingModel: region tokens, the head-swap assembly,
f_SD, the FRC in every block, the loss, backward and an AdamW step. Synthetic prepared
frames stand in for the data loader. Reported at 256 and 512 px: seconds per step,
samples per second, peak memory, and the projected time of the paper's 20k-step
generalist schedule at batch 32 on one such device.

With --clip-tokens the frames carry the CLIP grids `prepare --clip-tokens` stores, so the
step skips the ViT; --attention eager swaps the UNet's and CLIP's scaled-dot-product
attention (flash / memory-efficient kernels where the device has them) for the plain
matrix-product one, to show what each saves.

    python -m benchmarks.train [--device cuda] [--batch 8] [--precision bf16] [--repeats 3] [--clip-tokens]
        [--attention eager] [--tiny]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from diffusers.models.attention_processor import AttnProcessor

from benchmarks import networks
from benchmarks.device import describe
from facex_core.ford.clip_vision import ClipVisionEncoder
from facex_core.ford.motion import COEFFICIENT_LAYOUT
from facex_core.ford.regions import BISENET_LABELS
from facex_core.fors.tasks import TASKS
from facex_core.model.diffusers_binding import DiffusersFRC
from facex_core.model.facex import FaceXModel
from facex_core.model.kept_configs import scheduler_config
from facex_core.train.clip_tokens import TOKENS_KEY
from facex_core.train.dataset import to_device
from facex_core.train.step import TrainingModel

SCHEDULE_STEPS, SCHEDULE_BATCH = 20_000, 32


def synthetic_frames(batch: int, size: int, generator: torch.Generator,
                     tokens: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
    """Prepared frames as the data loader hands them over (values random, shapes real), with
    stored CLIP tokens of shape `tokens` (layers, C, g, g) when given."""
    frame = {
        "crops": torch.rand(batch, size, size, 3, generator=generator),
        "parsing": torch.randint(len(BISENET_LABELS), (batch, size, size), generator=generator),
        "identity_tokens": torch.randn(batch, 49, 512, generator=generator),
        "identity_embedding": torch.randn(batch, 512, generator=generator),
        "gaze": torch.randn(batch, 2, generator=generator) * 0.2,
        "latents": torch.randn(batch, 4, size // 8, size // 8, generator=generator),
    }
    coefficients = {f"3dmm_{name}": torch.randn(batch, width, generator=generator)
                    for name, width in COEFFICIENT_LAYOUT}
    if tokens is not None:
        frame[TOKENS_KEY] = torch.randn(batch, *tokens, generator=generator)
    return frame | coefficients


def peak_memory_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux: the process's peak RSS


def build(size: int, device: str, precision: torch.dtype, finetune_clip: bool, checkpointing: bool, tiny: bool,
          eager_attention: bool):
    torch.manual_seed(0)
    unet = networks.unet(tiny).to(device).requires_grad_(False)
    if precision != torch.float32:
        unet = unet.to(precision)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    clip_model = networks.clip_vision_model(tiny)
    if eager_attention:
        unet.set_attn_processor(AttnProcessor())
        clip_model.set_attn_implementation("eager")
    clip = ClipVisionEncoder(clip_model, device)
    clip.model.requires_grad_(finetune_clip)
    facex = FaceXModel(networks.facex_config(unet, tiny, size)).to(device)
    binding = DiffusersFRC(unet, facex).attach()
    text = torch.randn(1, 77, 768)
    model = TrainingModel(facex, clip, binding, text, scheduler_config("sd15"), TASKS["head_swap"], 0, 0.1).to(device)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    tokens = (len(facex.config.clip_layers), clip.width, clip.grid, clip.grid)
    return model, torch.optim.AdamW(trainable, lr=1e-5), sum(p.numel() for p in trainable), tokens


def time_steps(model, optimizer, batch: dict, device: str, precision: torch.dtype, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats + 1):  # the first step warms up
        start = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=precision, enabled=precision != torch.float32):
            loss = model(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=1, help="samples per step on this device (micro-batch)")
    parser.add_argument("--precision", default="float32", choices=("float32", "bf16"),
                        help="autocast and frozen-weight dtype")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--finetune-clip", action="store_true")
    parser.add_argument("--no-checkpointing", action="store_true", help="without gradient checkpointing")
    parser.add_argument("--clip-tokens", action="store_true",
                        help="frames carry stored CLIP tokens (prepare --clip-tokens): the step skips the ViT")
    parser.add_argument("--attention", default="sdpa", choices=("sdpa", "eager"),
                        help="UNet and CLIP attention: scaled-dot-product kernels, or plain matrix products")
    networks.add_tiny_flag(parser)
    args = parser.parse_args()
    if args.clip_tokens and args.finetune_clip:
        parser.error("--clip-tokens: stored tokens are of a frozen CLIP; drop --finetune-clip")
    precision = torch.bfloat16 if args.precision == "bf16" else torch.float32
    generator = torch.Generator().manual_seed(1)
    rows = []
    for size in args.sizes:
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model, optimizer, trainable, token_shape = build(size, args.device, precision, args.finetune_clip,
                                                         not args.no_checkpointing, args.tiny,
                                                         args.attention == "eager")
        tokens = token_shape if args.clip_tokens else None
        batch = {"sample": torch.arange(args.batch), "source": synthetic_frames(args.batch, size, generator, tokens),
                 "target": synthetic_frames(args.batch, size, generator, tokens)}
        batch = to_device(batch, torch.device(args.device))
        times = time_steps(model, optimizer, batch, args.device, precision, args.repeats)
        step = statistics.median(times)
        rows.append((size, step, args.batch / step, peak_memory_gib(args.device), trainable))
        del model, optimizer, batch
    device = describe(args.device)
    print(f"device: {device}; torch {torch.__version__}; {args.precision}; micro-batch {args.batch}; "
          f"CLIP {'fine-tuned' if args.finetune_clip else 'frozen'}"
          f"{', tokens stored (ViT skipped)' if args.clip_tokens else ''}; {args.attention} attention; "
          f"gradient checkpointing {'off' if args.no_checkpointing else 'on'}; median of {args.repeats} steps after "
          f"a warm-up{'; TINY networks' if args.tiny else ''}\n")
    print("| image | s / step | samples / s | peak memory (GiB) | trainable parameters | "
          f"{SCHEDULE_STEPS // 1000}k steps x batch {SCHEDULE_BATCH}, one device |")
    print("|---|---|---|---|---|---|")
    for size, step, rate, memory, trainable in rows:
        hours = SCHEDULE_STEPS * SCHEDULE_BATCH / rate / 3600
        print(f"| {size} | {step:.2f} | {rate:.3f} | {memory:.1f} | {trainable / 1e6:.1f}M | {hours:,.0f} h "
              f"({hours / 24:,.1f} days) |")


if __name__ == "__main__":
    main()
