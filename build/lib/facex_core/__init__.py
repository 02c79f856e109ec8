"""FaceX without ComfyUI: faces, the omni-representation (FORD), steering (FORS), the FaceX
network, training and evaluation. Nothing here imports ComfyUI; the node layer in
`nodes/` translates ComfyUI types to these calls."""

__version__ = "0.1.0"
