"""The FaceX network: configuration, adapters, FRC layers, the weight file, and the
binding to a diffusers UNet."""
