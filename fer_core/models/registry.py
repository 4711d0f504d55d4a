"""The model registry, one import for the code that reads and writes `models/<id>/` folders.

It is split by job, and new code imports from the module that does the job:
- `card`: what a model folder holds, `ModelInfo` and the typed, validated `ModelCard` view of its card;
- `card_store`: card I/O and locks (atomic writes, read-modify-write under the folder's lock, weights and card
  committed together, the card cache of long-lived processes, evaluation results saved into the card);
- `lookup`: where models are looked for (`$FER_MODELS_DIR` or a checkout's `models/`, then the packaged
  defaults), listing, lookup by id, each label set's default;
- `loading`: a model's Keras network or an export's runtime, and the identity of the files it came from.
This module re-exports their names for the many callers (pages, commands, tests) written against it.
"""
from __future__ import annotations

from .card import (CARD_FILE, CARD_SCHEMA_VERSION, ENSEMBLE_FILE, MODEL_FILE, MODEL_FILES, PREDICTIONS_DIR,  # noqa: F401
                   CardError, ModelCard, ModelInfo, RegistryError)
from .card_store import (COMMIT_FILE, LOCK_FILE, CardCache, card_lock, forget_predictions, read_card,  # noqa: F401
                         save_card_section, save_metrics, save_model_files, update_card, write_card)
from .loading import files_stamp, load_keras_model, load_model, load_runtime, model_files  # noqa: F401
from .lookup import (NO_MODELS, default_model, default_models_dir, get_model, list_models, model_roots,  # noqa: F401
                     model_source, models_stamp, pick_default, resolve_model, set_default, set_default_tta,
                     training_record)
