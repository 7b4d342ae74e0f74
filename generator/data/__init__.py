"""Audio-face pairs: manifest, loaders, importers, leak audit and leak-free splits."""
