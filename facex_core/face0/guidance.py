"""Face0's guidance: classifier-free guidance with separate weights for text, face and both.

The paper weighs text-only, face-only and combined predictions without publishing the
formula; this suite defines it as

    out = uncond + w_both * (both - uncond) + w_text * (text - uncond) + w_face * (face - uncond)

with four predictions of the same noisy latent:
    uncond  the negative prompt, no face
    text    the prompt, no face
    face    the empty prompt with the face tokens
    both    the prompt with the face tokens

w_text = w_face = 0 is exactly standard classifier-free guidance at scale w_both with
`both` as the positive prediction; a term whose weight is 0 needs no model call, so it
costs nothing. The combination is affine (its weights on the four predictions sum to 1),
so it gives the same result on noise, v or denoised (x0) predictions: ComfyUI's guiders
combine denoised predictions.
"""

from __future__ import annotations

import torch

# The predictions weighed against `uncond`, in the order the formula adds them.
TERMS = ("both", "text", "face")


def needed_terms(text_weight: float, face_weight: float, combined_weight: float) -> tuple[str, ...]:
    """The predictions (besides uncond) whose weight is not 0, i.e. the model calls to make."""
    weights = {"both": combined_weight, "text": text_weight, "face": face_weight}
    return tuple(term for term in TERMS if weights[term] != 0)


def face0_guidance(
    uncond: torch.Tensor,
    text: torch.Tensor | None,
    face: torch.Tensor | None,
    both: torch.Tensor | None,
    text_weight: float,
    face_weight: float,
    combined_weight: float,
) -> torch.Tensor:
    """The formula above. A prediction may be None when its weight is 0 (it is not used).

    Each term is computed as uncond + (prediction - uncond) * weight, the same operations
    as ComfyUI's cfg_function, so with text and face weights 0 the result equals ComfyUI's
    plain CFG bit for bit.
    """
    predictions = {"both": both, "text": text, "face": face}
    weights = {"both": combined_weight, "text": text_weight, "face": face_weight}
    result = uncond
    for term in needed_terms(text_weight, face_weight, combined_weight):
        prediction = predictions[term]
        if prediction is None:
            raise ValueError(f"the {term!r} prediction is needed: its weight is {weights[term]}, not 0")
        result = result + (prediction - uncond) * weights[term]
    return result
