"""lrc_toolkit: continuous-time liquid neural networks in JAX."""

import importlib.metadata

from ._compare import (
    compare_views as compare_views,
    plot_comparison as plot_comparison,
    ViewComparison as ViewComparison,
)
from ._diagnostics import (
    check_jacobian_structure as check_jacobian_structure,
    transition_factors as transition_factors,
)
from ._discretise import (
    AbstractDiscretisation as AbstractDiscretisation,
    DiffraxStep as DiffraxStep,
    Euler as Euler,
    SemiImplicitEuler as SemiImplicitEuler,
)
from ._neurons.base import (
    AbstractAffineNeuron as AbstractAffineNeuron,
    AbstractLiquidNeuron as AbstractLiquidNeuron,
)
from ._neurons.complex_lrc import ComplexLRC as ComplexLRC
from ._neurons.dense_lrc import DenseLRC as DenseLRC
from ._neurons.gated import (
    GRUNeuron as GRUNeuron,
    LSTMNeuron as LSTMNeuron,
    MGUNeuron as MGUNeuron,
)
from ._neurons.lrc import LRC as LRC, STC as STC
from ._neurons.ltc import LTC as LTC
from ._solution import RESULTS as RESULTS, Solution as Solution
from ._solve.auto import solve as solve
from ._solve.linear_scan import linear_recurrence as linear_recurrence
from ._solve.ode import solve_ode as solve_ode
from ._solve.parallel import solve_parallel as solve_parallel
from ._solve.sequential import solve_sequential as solve_sequential
from ._solve.sharded import (
    sharded_linear_recurrence as sharded_linear_recurrence,
    solve_parallel_sharded as solve_parallel_sharded,
)


__version__ = importlib.metadata.version("lrc_toolkit")
