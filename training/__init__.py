"""Training: the original's loop, ONadam, step schedule, checkpoints and distributed runs."""
from .run import fit
from .trainer import Trainer, TrainingDiverged

__all__ = ['Trainer', 'TrainingDiverged', 'fit']
