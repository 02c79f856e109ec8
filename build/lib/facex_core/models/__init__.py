"""The model files FaceX uses: manifest, locating them on disk, checking and downloading."""
