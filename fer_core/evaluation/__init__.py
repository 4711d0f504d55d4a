"""How good a model is: imports the layers up to `inference`.

Scores on a split (`evaluate`, from `metrics`, `scores` and `latency`; per-image `predictions` saved beside
the card; an export beside its `parents`), the tables that compare saved results (`leaderboard`, `comparison`,
edge `exports` beside their parents, distilled `students` beside their teachers), robustness to corruptions
(`robustness`), studies across models (`studies`), embeddings (`embeddings`), likely label errors
(`label_issues`), model cards (`model_card`) and what each label set's default learned from (`defaults`).
"""
