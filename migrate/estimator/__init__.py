"""Canned Estimators into Keras 3: read the Estimator from its graph, write its model and table.

    report = port("model_dir", "ported")   # ported/model.py, table.toml, the weights
"""

from migrate.estimator.columns import EstimatorError
from migrate.estimator.port import PortReport
from migrate.estimator.port import newest_export
from migrate.estimator.port import open_source
from migrate.estimator.port import port
from migrate.estimator.spec import EstimatorSpec

__all__ = ["EstimatorError", "EstimatorSpec", "PortReport", "newest_export", "open_source",
           "port"]
