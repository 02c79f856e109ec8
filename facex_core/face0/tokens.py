"""Putting the face into a prompt's encoding: the face tokens replace its LAST positions.

The paper overwrites the last 3 token embeddings of the prompt encoding. Here that means the
last 3 positions of the encoding tensor, not the last 3 tokens of the prompt text, because:

- A ComfyUI CONDITIONING holds only the encoder's output [B, T, C] (T = 77, or 154, 231, ...
  when ComfyUI encodes a long prompt as 77-token chunks and concatenates them), with no
  token ids or prompt length, so the positions of the last real tokens cannot be found
  there; the last positions always exist.
- In SD1.5 and SD2 those positions hold the end-of-text token (SD1.5 pads with it) or the
  padding after it (SD2 pads with "!"). Through the text encoder's causal attention they
  see the whole prompt and summarise it, so replacing them keeps every prompt token's own
  embedding. ComfyUI ends each chunk with the end token and pads it to 77, so a final
  chunk of at most 73 prompt tokens loses none; a fuller one loses its last one or two.

Training (train/) and inference (nodes, the face0 command) both use this function, so the
model learns the face at exactly the positions where it is given.
"""

from __future__ import annotations

import torch

from ..errors import BatchSizeError, ModelFileError


def override_last_tokens(context: torch.Tensor, face_tokens: torch.Tensor) -> torch.Tensor:
    """`context` [B, T, C] with its last K positions replaced by `face_tokens` [B or 1, K, C].

    Returns a new tensor in the context's dtype and device; the inputs are not changed.
    """
    if context.ndim != 3 or face_tokens.ndim != 3:
        raise ValueError(f"context must be [batch, tokens, width] and face_tokens [batch, face tokens, width]; "
                         f"got {list(context.shape)} and {list(face_tokens.shape)}")
    batch, length, width = context.shape
    faces, count, face_width = face_tokens.shape
    if face_width != width:
        raise ModelFileError(f"The face tokens are {face_width} wide but the prompt encoding is {width} wide: the "
                             "Face0 file was made for another base model (SD1.5 encodes 768 wide, SD2 1024). Use "
                             "a Face0 file trained for this checkpoint.")
    if faces not in (1, batch):
        raise BatchSizeError(f"{faces} faces cannot be given to a conditioning batch of {batch}: give one face, "
                             f"or one per conditioning ({batch}).")
    if count > length:
        raise ValueError(f"{count} face tokens do not fit an encoding of {length} positions")
    result = context.clone()
    result[:, length - count:] = face_tokens.to(device=context.device, dtype=context.dtype)
    return result
