"""What determines a training run: `TrainConfig`, checked on creation and stored verbatim in the model card.

Kept apart from the training code (and free of Keras) so the CLI can build its parser, and pages can
read a card's config, without loading TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..data.votes import LABEL_SOURCES

AUGMENTATIONS = ("none", "light", "standard", "strong", "photo")  # photo: real-photo framing and degradation
SCHEDULES = ("onecycle", "cosine", "constant")
CLASS_WEIGHTS = ("none", "balanced")
SWA_BATCHNORM = ("clean", "augmented")
TEACHER_OUTPUTS = ("cached", "per-batch")  # distillation: the teacher answers once per face, or per augmented batch


@dataclass
class TrainConfig:
    """Everything that determines a training run; stored verbatim in the model card."""

    arch: str
    data: str
    labels: str = "all"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.1
    augment: str = "standard"
    color: str = "grayscale"
    patience: int = 8
    seed: int = 42
    out: str = ""
    name: str = ""
    limit: int = 0  # use at most this many training images (0 = all); for quick experiments
    mixed_precision: str = "auto"  # auto | off | bfloat16 | float16
    init_from: str = ""  # a registered model whose matching layers initialise this one (fine-tuning)
    erase: float = 0.0  # random-erasing probability per face (a grey rectangle, 2–25 % of the face)
    exclude_leaks: bool = True  # drop training faces that duplicate a validation/test face (exact or near)
    exclude: str = ""  # a CSV with a `file` column (e.g. from `label-issues`): training files to leave out
    class_weight: str = "none"  # none | balanced: weigh each face by n / (classes × its class count)
    swa: int = 0  # ship the mean of the last N epochs' weights (stochastic weight averaging); 0 = best epoch
    swa_batchnorm: str = "clean"  # BatchNorm statistics of the SWA mean from clean or augmented training faces
    label_source: str = "fer2013"  # fer2013 | ferplus-majority | ferplus-soft (FER+ crowd votes, fer_core.data.votes)
    votes: str = ""  # the FER+ votes CSV ("" = ferplus_votes.csv or fer2013new.csv found beside the data)
    teacher: str = ""  # distillation: a registered model whose probabilities the network learns (training.distill)
    teacher_tta: str = ""  # the teacher's test-time augmentation ("" = its card's default; "none" when per-batch)
    teacher_outputs: str = "cached"  # cached | per-batch: when the teacher answers (fer_core.training.distill)
    temperature: float = 2.0  # distillation temperature T (teacher and student softened as softmax(log p / T))
    alpha: float = 0.9  # distillation: weight of the teacher's term; 1 − alpha goes to the hard label
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"--augment must be one of {', '.join(AUGMENTATIONS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}")
        if self.color not in ("grayscale", "rgb"):
            raise ValueError("--color must be grayscale or rgb")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("--epochs and --batch-size must be positive")
        if not 0.0 <= self.erase <= 1.0:
            raise ValueError("--erase must be a probability between 0 and 1")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"--class-weight must be one of {', '.join(CLASS_WEIGHTS)}")
        if not 0 <= self.swa <= self.epochs:
            raise ValueError("--swa must be between 0 and --epochs (the number of last epochs to average)")
        if self.swa_batchnorm not in SWA_BATCHNORM:
            raise ValueError(f"--swa-batchnorm must be one of {', '.join(SWA_BATCHNORM)}")
        if self.label_source not in LABEL_SOURCES:
            raise ValueError(f"--label-source must be one of {', '.join(LABEL_SOURCES)}")
        if self.teacher_outputs not in TEACHER_OUTPUTS:
            raise ValueError(f"--teacher-outputs must be one of {', '.join(TEACHER_OUTPUTS)}")
        if self.temperature <= 0 or not 0.0 <= self.alpha <= 1.0:
            raise ValueError("--temperature must be positive and --alpha between 0 and 1")
