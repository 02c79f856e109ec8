"""Face detection (insightface SCRFD), 5-point alignment to FaceX crops, and paste-back."""
