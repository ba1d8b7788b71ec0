"""obliviate: make a language model forget, prove how well it forgot, keep a record."""

__version__ = "0.1.0"
