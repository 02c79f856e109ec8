"""Prompts as Stable Diffusion's text encoder reads them: CLIP's byte-pair tokens, 77 per prompt.

clip_tokenizer/ keeps CLIP's vocabulary and merges (OpenAI CLIP, MIT licence: the
`bpe_simple_vocab_16e6` of the original, written out as the vocab.json and merges.txt that
SD1.x's tokenizer folder holds), so no file is fetched from the Hugging Face Hub. SD2.x's
OpenCLIP tokenizer uses the same vocabulary; the families differ only in what pads a
prompt (sampling.PROMPT_PADDING). A prompt longer than 75 tokens is cut there, as
diffusers' pipelines cut it (ComfyUI instead encodes long prompts in chunks of 77).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
from transformers import CLIPTextModel, CLIPTokenizer

from .config import FAMILY_BY_CONTEXT
from .sampling import padded_prompt

TOKENIZER_DIR = Path(__file__).with_name("clip_tokenizer")


@cache
def clip_tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), local_files_only=True)


def prompt_tokens(prompt: str) -> list[int]:
    """The prompt's own token ids, without start and end (so its length says whether it fits)."""
    return clip_tokenizer()(prompt, add_special_tokens=False)["input_ids"]


def prompt_ids(prompts: list[str], family: str) -> torch.Tensor:
    """[N, 77] token ids of the prompts, padded as the family pads them."""
    return torch.tensor([padded_prompt(prompt_tokens(prompt), family) for prompt in prompts])


@torch.no_grad()
def encode_prompts(text_encoder: CLIPTextModel, prompts: list[str]) -> torch.Tensor:
    """The text encoder's output [N, 77, width] for the prompts; the family follows from its width."""
    ids = prompt_ids(prompts, FAMILY_BY_CONTEXT[text_encoder.config.hidden_size])
    return text_encoder(input_ids=ids.to(text_encoder.device)).last_hidden_state
