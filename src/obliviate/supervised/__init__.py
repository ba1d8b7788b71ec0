"""Unlearning beyond text generation: small supervised models (regression and classification MLPs).

    obliviate run --config regression     # synthetic grouped regression: blindspot, gaussian_ft, baselines
    obliviate run --config digits         # scikit-learn digits, class forgotten: laf, baselines

Tasks (tasks.py), the MLP (models.py), training (train.py), metrics (metrics.py), the pipeline and
report (pipeline.py, report.py); the methods live in obliviate/methods/supervised/, registered in
their own registry (registry.py) so they are never offered to language-model runs.
"""
