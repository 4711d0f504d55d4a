"""Making models: imports every layer below, `evaluation` included (a finished run scores itself).

Training (`train`, the run end to end, over `config`, `selection`, `augment`, `input_pipeline`, `fit`,
`safe_stop`, `swa` and `card`), knowledge distillation (`distill`, `distill_loss`) and edge exports (`export`).
"""
