"""How good a model is: imports the layers up to `inference`.

Scores on a split (`evaluate`), robustness to corruptions (`robustness`), studies across models (`studies`),
embeddings (`embeddings`), likely label errors (`label_issues`) and model cards (`model_card`).
"""
