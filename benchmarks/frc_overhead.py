"""FRC overhead: one UNet step with and without the FaceX FRC, full SD1.5 architecture.

Random weights (speed does not depend on the values). Patched and unpatched steps are
interleaved in one run; the ratios of their medians and of their minima (the robust
figure on a noisy shared machine) are reported at 256 and 512 px, with the ratio of the
floating-point operations counted by torch (exact, the same on every device),
batch 2 (classifier-free guidance runs null and conditional context together). It also
checks, at full size, that a zero-initialised FaceX leaves the noise prediction unchanged.

    python -m benchmarks.frc_overhead [--device cuda] [--repeats 5] [--dtype float16] [--sizes 512] [--tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from benchmarks import networks
from benchmarks.device import describe
from facex_core.model.diffusers_binding import DiffusersFRC
from facex_core.model.facex import FaceXModel

BATCH = 2


def step_time(unet, latents, timestep, text, device: str) -> float:
    start = time.perf_counter()
    unet(latents, timestep, encoder_hidden_states=text)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _cpu_attention_flops(query, key, value, *args, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


# torch's counter knows the CUDA attention kernels but not the CPU one; count it the same way.
ATTENTION_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


def step_flops(unet, latents, timestep, text) -> int:
    with FlopCounterMode(display=False, custom_mapping=ATTENTION_FLOPS) as counter:
        unet(latents, timestep, encoder_hidden_states=text)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sides, px")
    networks.add_tiny_flag(parser)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    unet = networks.unet(args.tiny).to(args.device, dtype).eval().requires_grad_(False)
    config = networks.facex_config(unet, args.tiny)
    facex = FaceXModel(config).to(args.device, dtype).eval()
    gen = torch.Generator().manual_seed(1)
    text = torch.randn(BATCH, 77, 768, generator=gen).to(args.device, dtype)
    context = torch.randn(BATCH, config.context_tokens, 768, generator=gen).to(args.device, dtype)
    timestep = torch.tensor([500] * BATCH, device=args.device)
    rows = []
    with torch.no_grad():
        for size in args.sizes:
            latents = torch.randn(BATCH, 4, size // 8, size // 8, generator=gen).to(args.device, dtype)
            plain = unet(latents, timestep, encoder_hidden_states=text).sample
            with DiffusersFRC(unet, facex) as frc:
                frc.set_context(context)
                zero_init_diff = float((unet(latents, timestep, encoder_hidden_states=text).sample - plain).abs().max())
            binding = DiffusersFRC(unet, facex)
            binding.set_context(context)
            flops_plain = step_flops(unet, latents, timestep, text)
            with binding:
                flops_frc = step_flops(unet, latents, timestep, text)
            unpatched, patched = [], []
            for _ in range(args.repeats + 1):  # the first pair warms up
                unpatched.append(step_time(unet, latents, timestep, text, args.device))
                binding.attach()
                patched.append(step_time(unet, latents, timestep, text, args.device))
                binding.detach()
            rows.append((size, unpatched[1:], patched[1:], flops_frc / flops_plain, zero_init_diff))
    device = describe(args.device)
    print(f"device: {device}; torch {torch.__version__}; {args.dtype}; batch {BATCH}; "
          f"f_SD {config.context_tokens} tokens; median of {args.repeats}{'; TINY networks' if args.tiny else ''}\n")
    print("| image | UNet step, median (s) | with FRC, median (s) | ratio of medians | ratio of minima "
          "| FLOP ratio | zero-init max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for size, base, with_frc, flop_ratio, diff in rows:
        median_ratio = statistics.median(with_frc) / statistics.median(base)
        print(f"| {size} | {statistics.median(base):.3f} | {statistics.median(with_frc):.3f} | "
              f"{median_ratio:.3f} | {min(with_frc) / min(base):.3f} | {flop_ratio:.3f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
