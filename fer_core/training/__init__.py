"""Making models: imports every layer below, `evaluation` included (a finished run scores itself).

Training (`train`), knowledge distillation (`distill`, `distill_loss`) and edge exports (`export`).
"""
