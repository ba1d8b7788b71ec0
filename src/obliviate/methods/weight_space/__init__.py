"""Weight-space methods: each returns a model with new weights. Importing registers them all."""

from obliviate.methods.weight_space import (  # noqa: F401  (each module registers its method)
    gradient_ascent, gradient_difference, iau, idk, kl, npo, rmu, simnpo, task_vector, undial, uniform_choice)
