from obliviate.methods.weight_space import gradient_ascent, gradient_difference  # noqa: F401  (registers)
