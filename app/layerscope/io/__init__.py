"""Files and images in and out: paths checked before anything opens them and outputs written
safely, never over the package or a model's code (files), names of saved maps (savenames),
photos loaded and preprocessed, overlays and arrays written (imaging)."""
