"""The app's widgets: the module tree and the tabs that describe the highlighted node."""
