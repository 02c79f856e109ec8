"""The FaceX regions and which face-parsing labels make each of them.

The paper splits the face finer than "face / hair / background": eyebrows, eyes, nose,
lips, ears, skin, hair and background carry their own region token. The parser's other
classes stay available for attribute editing. Every parsing label belongs to exactly one
region, so the region masks partition the crop. Plain data (no torch), so argument checks can read it
before anything heavy loads; region_masks.py turns parser labels into masks.
"""

from __future__ import annotations

# CelebAMask-HQ label order of the BiSeNet face parser (79999_iter.pth / parsing_bisenet.pth).
BISENET_LABELS = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
    "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)

REGIONS: dict[str, tuple[str, ...]] = {
    "eyebrows": ("l_brow", "r_brow"),
    "eyes": ("l_eye", "r_eye"),
    "nose": ("nose",),
    "lips": ("u_lip", "l_lip", "mouth"),
    "ears": ("l_ear", "r_ear"),
    "skin": ("skin",),
    "hair": ("hair",),
    "background": ("background",),
    "glasses": ("eye_g",),
    "hat": ("hat",),
    "earrings": ("ear_r",),
    "neck": ("neck", "neck_l"),
    "cloth": ("cloth",),
}
REGION_NAMES = tuple(REGIONS)
CORE_REGIONS = REGION_NAMES[:8]

# FaceXFormer's 11 LaPa classes (analysis_labels.PARSING_CLASSES) in the same regions. LaPa
# has no ears, glasses, hat, earrings, neck or cloth class: those regions stay empty for
# this parser (absent, never guessed), and what of them shows falls in its skin or background.
FACEXFORMER_REGIONS: dict[str, tuple[str, ...]] = {
    "eyebrows": ("left_brow", "right_brow"),
    "eyes": ("left_eye", "right_eye"),
    "nose": ("nose",),
    "lips": ("upper_lip", "lower_lip", "inner_mouth"),
    "skin": ("skin",),
    "hair": ("hair",),
    "background": ("background",),
}
FACEXFORMER_ABSENT = tuple(name for name in REGION_NAMES if name not in FACEXFORMER_REGIONS)
PARSER_REGIONS = (REGIONS, FACEXFORMER_REGIONS)  # every parser's label -> region table
