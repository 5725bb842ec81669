"""Training and scoring of the frame-pair models (MEDN, STSTNet) on the composite set.

``loop`` is the training loop, ``protocols`` the subject-disjoint scoring (LOSO, k-fold
CV, the per-subject best-epoch column), ``tasks`` where folds run (processes, Ray), and
``cli`` the ``loso``, ``train`` and ``evaluate`` commands. The scores themselves live in
``realtime_me.metrics``.
"""
from .cli import configure_evaluate, configure_loso, configure_train, run_evaluate, run_loso, run_train
from .loop import SCHEDULES, TrainConfig, masked_au_loss, predict, train_model
from .protocols import (DEFAULT_DATA, choose_aus, cross_validate, load_for, loso, per_subject_best, pretrain_state,
                        pretrain_summary)
from .tasks import run_tasks

__all__ = ["DEFAULT_DATA", "SCHEDULES", "TrainConfig", "choose_aus", "configure_evaluate", "configure_loso",
           "configure_train", "cross_validate", "load_for", "loso", "masked_au_loss", "per_subject_best",
           "predict", "pretrain_state", "pretrain_summary", "run_evaluate", "run_loso", "run_tasks",
           "run_train", "train_model"]
