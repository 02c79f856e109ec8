"""Face0: instant likeness from a face embedding placed in the prompt (arXiv 2306.06638).

An identity encoder embeds a face; a small projector turns the embedding into 3 token
embeddings that overwrite the last 3 positions of the prompt's encoding; a UNet fine-tuned
on images, captions and their faces (a LoRA, or the whole UNet) turns that conditioning
into the person; a guidance with separate text, face and combined weights steers sampling.
The authors released no code or weights: this package is the method, and train/ makes
the weights.

    projector.py         Face0Config and the 4-layer MLP embedding -> tokens
    tokens.py            the override of the last positions of a prompt encoding
    guidance.py          the text / face / combined guidance formula
    weights.py           the weight file: projector + UNet LoRA in ComfyUI's kohya naming
    encoders.py          the identity encoders by name (ArcFace, InceptionResnetV1 VGGFace2)
    inception_resnet.py  InceptionResnetV1 in facenet-pytorch's published layout

Nothing here imports ComfyUI; the nodes and the face0 command use these modules.
"""
