"""How good a model is: imports the layers up to `inference`.

Scores on a split (`evaluate`, from `metrics`, `scores` and `latency`; per-image `predictions` saved beside
the card; an export beside its `parents`), the tables that compare saved results (`leaderboard`, `comparison`,
edge `exports` beside their parents, distilled `students` beside their teachers), robustness to corruptions
(`robustness`), studies across models (`studies`), embeddings (`embeddings`), likely label errors
(`label_issues`), model cards (`model_card`), what each label set's default learned from (`defaults`), and
real photos through the whole pipeline (`photos`: detect, crop, classify; kept by `photo_store`, reported by
`photo_report`, its misses drawn by `photo_gallery`).
"""
