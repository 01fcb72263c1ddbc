"""Modal screens: method and class pickers, the image path input, help."""
