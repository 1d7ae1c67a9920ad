"""Knowledge distillation (`distill:` in a run config): a trained teacher's predictions taught to
the model being trained, as VideoMAE V2 makes its ViT-S and ViT-B from the fine-tuned ViT-g.

The loss on a batch is `(1 - alpha) * CE(student, labels) + alpha * T^2 * KL(teacher_T || student_T)`,
both distributions softened by the temperature T (Hinton et al. 2015; T^2 keeps the gradient's
scale as T changes). The teacher sees the very clips the student does (mixed ones included, as
DeiT distils), in eval mode and without gradients, so it must read the same input: the same
classes and the same clip (frames, size, normalisation). VideoMAE V2 released its distilled
weights but not the code that made them; its paper names the teacher's logits as the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidrec.errors import ConfigError
from vidrec.models.base import ModelBase, VideoModel
from vidrec.models.loader import load_model

# What a clip is made of: a teacher that differs in one of these would read another input.
CLIP_FIELDS = (
    "num_frames",
    "sampling_rate",
    "frame_sampling",
    "crop_size",
    "mean",
    "std",
    "centering",
    "modality",
)


class Teacher:
    """A frozen classifier whose softened predictions the student learns (see the module)."""

    def __init__(self, source: str, *, alpha: float, temperature: float):
        if not 0.0 < alpha <= 1.0 or temperature <= 0:
            raise ConfigError(
                f"distill.alpha must be in (0, 1] and distill.temperature > 0; got {alpha}, {temperature}"
            )
        self.source, self.alpha, self.temperature = source, alpha, temperature
        self.model: ModelBase = load_model(source)
        if not isinstance(self.model, VideoModel):
            raise ConfigError(f"distill.teacher {source}: a {self.model.arch} is not a video classifier")
        for p in self.model.parameters():
            p.requires_grad_(False)

    def check(self, student: ModelBase, classes: list[str]) -> None:
        """The teacher must predict these classes from the clips the student is fed."""
        teacher = self.model
        if teacher.labels and list(teacher.labels) != list(classes):
            raise ConfigError(
                f"distill.teacher {self.source} predicts other classes ({len(teacher.labels)}: "
                f"{teacher.labels[:3]}...) than the data's ({len(classes)}: {classes[:3]}...)"
            )
        if teacher.num_classes != len(classes):
            raise ConfigError(
                f"distill.teacher {self.source} has {teacher.num_classes} outputs; "
                f"the data has {len(classes)} classes"
            )
        ours, theirs = student.preprocessing, teacher.preprocessing
        differ = [
            f"{f} {getattr(theirs, f)} vs {getattr(ours, f)}"
            for f in CLIP_FIELDS
            if getattr(ours, f) != getattr(theirs, f)
        ]
        if differ:
            raise ConfigError(
                f"distill.teacher {self.source} reads other clips than the model trained: "
                + "; ".join(differ)
                + " (teacher vs student; set the student's data: keys to the teacher's)"
            )

    def loss(self, student_logits: torch.Tensor, x: torch.Tensor, supervised: torch.Tensor) -> torch.Tensor:
        """The labels' loss `supervised` blended with the teacher's term on the same clips `x`."""
        model = self.model
        if model.device != x.device:
            model.to(x.device)
        with torch.no_grad():  # in eval mode since loading; the loop never trains it
            teacher = model(x).float()
        t = self.temperature
        kd = F.kl_div(
            F.log_softmax(student_logits.float() / t, dim=-1),
            F.log_softmax(teacher / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        ) * (t * t)
        return (1.0 - self.alpha) * supervised + self.alpha * kd


__all__ = ["CLIP_FIELDS", "Teacher"]
