"""Prediction of the final training loss from quantities known early in training
(docs/methods.md §3 "Prediction", "Baselines", "Fair comparisons"; §5 figures 6, 7, 9).

Whether a run ends in E_high (c_f > high or not finite) or E_low (c_f < low) is predicted from
feature sets known by prediction time t* (baselines, FTLEs, fixed-lag CLVs, their
combinations; Ginelli CLVs only as an upper bound) by Gaussian naive Bayes under repeated
stratified cross-validation; each AUC comes with a DeLong interval, the best set of each family
available by time τ is chosen by nested cross-validation and compared with the baseline
family's best by the paired DeLong test, and the best predictor of all feeds an early-stopping
rule. The maths is stated in the submodules:

* :mod:`.features`: feature families and sets, per-run features at t*, availability times,
  computability rules, :data:`CLV_CONVERGENCE_ANGLE`;
* :mod:`.statistics`: midrank AUC, DeLong variances, paired DeLong test, ROC on a grid,
  summaries over CV repeats;
* :mod:`.classifier`: Gaussian naive Bayes (decomposed into per-feature terms), repeated
  stratified CV of many sets at once, the one-set API (:func:`cross_validated_auc`,
  :func:`single_feature_auc`);
* :mod:`.nested`: nested selection of the best candidate set, for many candidate lists on the
  same runs at once;
* :mod:`.best_available`: the nested best of each family available by time τ and its paired
  comparison with the baseline family's best;
* :mod:`.early_stopping`: the stopping trade-off, chance and best-possible references;
* :mod:`.study`: :func:`predict_combination` (all of the above for one combination: the
  auc.csv rows :data:`AUC_COLUMNS` and the prediction dataset), the E_low reporting rule.
"""

from .best_available import BEST_FAMILIES, INDICATOR_FAMILIES
from .classifier import CVResult, SingleAUC, cross_validated_auc, single_feature_auc
from .early_stopping import (
    STOP_THRESHOLDS, EarlyStopping, best_possible_saving, chance_saving, early_stopping_curve,
)
from .features import (
    CLV_CONVERGENCE_ANGLE, FeatureSet, available_time, feature_matrix, feature_sets, features_at,
)
from .statistics import FPR_GRID
from .study import AUC_COLUMNS, INPUT_VARIABLES, low_event_rule, predict_combination

__all__ = [
    "AUC_COLUMNS", "BEST_FAMILIES", "CLV_CONVERGENCE_ANGLE", "CVResult", "EarlyStopping",
    "FPR_GRID", "FeatureSet", "INDICATOR_FAMILIES", "INPUT_VARIABLES", "STOP_THRESHOLDS",
    "SingleAUC", "available_time", "best_possible_saving", "chance_saving",
    "cross_validated_auc", "early_stopping_curve", "feature_matrix", "feature_sets",
    "features_at", "low_event_rule", "predict_combination", "single_feature_auc",
]
