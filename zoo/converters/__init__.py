"""Weight converters: trained weights published for other frameworks, read without those
frameworks and written into the zoo's Keras builders.

`torch_legacy` reads a PyTorch state dict in PyTorch's legacy file format with the standard
library's `pickle` (restricted to the names a state dict needs) and numpy; each converter
module beside it is one table from the checkpoint's names to a Keras model's layers, proven
by a numerics test against the reference implementation's outputs.
"""
