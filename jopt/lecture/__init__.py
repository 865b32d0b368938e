"""The lecture's demos: the digits MLP, the measured summary table, ``python -m jopt``.

The lecture tours gradient descent (batch, stochastic, mini-batch; Momentum,
Nesterov, Adagrad, Adadelta, RMSprop, Adam, Adamax) and the initialization of deep
networks.  This package holds the code its demos share, so that the command line,
the notebooks in ``notebooks/`` and ``examples/`` run one definition of each:

* [`jopt.lecture.digits`][jopt.lecture.digits]: the running example, a 64-64-10 tanh MLP on
  scikit-learn's digits (data split, initialization, forward pass, loss, evaluation);
* [`jopt.lecture.table`][jopt.lecture.table]: the lecture's summary table (adaptive learning rate,
  consistent units, saddle points), measured for any optimizer of the registry;
* [`jopt.lecture.roster`][jopt.lecture.roster]: which optimizers the lecture covers and how its
  figures name them; every one comes from [`jopt.optimizers.ALL`][jopt.optimizers.ALL];
* [`jopt.lecture.compare`][jopt.lecture.compare]: the optimizers of the registry trained on the
digits
  over several seeds, in one compiled program;
* ``jopt.lecture.cli``: ``python -m jopt``, that comparison and the table;
* ``jopt.lecture.bench``: ``python -m jopt bench``, a fair race of every optimizer
  on four workloads (``jopt.lecture.workloads``), scored as AlgoPerf scores.

``import jopt`` does not import this package.  Its optional dependencies
(scikit-learn, matplotlib, tqdm) are jopt's ``examples`` extra, imported only where
needed: ``pip install "jopt[examples]"``.
"""

from jopt.lecture import compare, digits, roster, table
from jopt.lecture._extras import MissingExtra
from jopt.lecture.roster import LECTURE_OPTIMIZERS

__all__ = ["LECTURE_OPTIMIZERS", "MissingExtra", "compare", "digits", "roster", "table"]
