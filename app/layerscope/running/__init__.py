"""Running a model for a pass: what it is fed (example_inputs), the one guard every hooked
pass runs under and the model's lock (locking), output shapes from one forward (probe), the
one walker over nested outputs (nested), progress and cancellation (jobcontrol), and the
garbage collector paused while a big structure is built (gcpause)."""
