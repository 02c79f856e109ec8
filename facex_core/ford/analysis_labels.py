"""What each output of FaceXFormer means: the names of its classes and bins, in head order.

The authors released no label files, so each table says how far it was checked and
against what. "Authors' figures" are the images of the project page in their repository
(docs/static/images: qualitative.png, intro.png) read beside the colour table of their
inference.py. Plain data (no torch), so argument checks can read it before anything loads.
"""

from __future__ import annotations

from .regions import FACEXFORMER_REGIONS

# Face parsing, 11 classes (LaPa's). Verified against the authors' figures: in
# qualitative.png every class is drawn in the colour inference.py gives its index (skin 1
# blue, brows 2/3 greens, eyes 4/5 yellows, nose 6 orange, lips 7/9 pinks, hair 10 red),
# the upper lip carries index 7's colour and the lower lip index 9's. "Left" is the
# image's left (the viewer's): the brow and eye on the image's left side carry 2 and 4.
PARSING_CLASSES = (
    "background", "skin", "left_brow", "right_brow", "left_eye", "right_eye", "nose",
    "upper_lip", "inner_mouth", "lower_lip", "hair",
)

# Facial attributes: CelebA's 40, in CelebA's order (list_attr_celeba.txt). Presumed, not
# verified: nothing upstream names them. The order agrees with the six 40-bit vectors of
# the authors' figures: the three smiling, open-mouthed young faces of qualitative.png all
# have High_Cheekbones, Mouth_Slightly_Open, No_Beard, Smiling and Young set (and Male
# clear for the two women), and the two young faces of intro.png end in 1 (Young).
ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# Age, gender and race come from UTKFace (the paper evaluates age on it; "Indian" among 5
# races is UTKFace's vocabulary, FairFace has 7). Age: 8 bins of a decade. Bins 0 and 1 are
# verified ("0-10 years", "10-20 years" in qualitative.png; "Age: 4.0" on a man who looks in his
# forties in intro.png); the later bins continuing by decades and the last one being open
# are presumed, as 8 bins must reach UTKFace's oldest faces.
AGE_BINS = ("0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
# UTKFace's order (0 male, 1 female). Index 0 = male is verified (intro.png: "Gender: 0.0"
# on a boy and on a man); index 1 follows.
GENDERS = ("male", "female")
# UTKFace's order, presumed: qualitative.png shows only the names (White, Black, Indian),
# and intro.png's "Race: 2.0" (Asian in UTKFace) on a boy who may be East Asian and on a man
# who does not look it settles nothing.
RACES = ("white", "black", "asian", "indian", "other")

# Landmark occlusion: one flag per point of COFW's 29-point layout, trained on COFW,
# whose flags are 1 for an occluded point; the paper's visibility score (72.56 on COFW)
# is the occlusion-recall-at-80%-precision measure of the COFW literature. So the head's
# sigmoid is read as "occluded". Presumed from the dataset; not checked on the weights.
OCCLUSION_POINTS = 29
THRESHOLD = 0.5  # attributes and occlusion are "present" at sigmoid >= 0.5, as upstream

# The masks the analysis node offers: the whole face, the face with hair, each FaceX region
# the classes make (lips with the inner mouth) and each class on its own.
MASK_GROUPS: dict[str, tuple[str, ...]] = {
    "face": tuple(name for name in PARSING_CLASSES if name not in ("background", "hair")),
    "face_and_hair": tuple(name for name in PARSING_CLASSES if name != "background"),
    **FACEXFORMER_REGIONS,
    **{name: (name,) for name in PARSING_CLASSES},
}
