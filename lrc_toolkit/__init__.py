"""lrc_toolkit: continuous-time liquid neural networks in JAX."""

import importlib.metadata as _metadata

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
    ClosedForm as ClosedForm,
    DiffraxStep as DiffraxStep,
    Euler as Euler,
    ImplicitEuler as ImplicitEuler,
    SemiImplicitEuler as SemiImplicitEuler,
)
from ._lyapunov import lyapunov_exponent as lyapunov_exponent
from ._neurons.base import (
    AbstractAffineNeuron as AbstractAffineNeuron,
    AbstractLiquidNeuron as AbstractLiquidNeuron,
)
from ._neurons.biophysical import (
    AdaptiveTheta as AdaptiveTheta,
    FitzHughNagumo as FitzHughNagumo,
    HodgkinHuxley as HodgkinHuxley,
    MorrisLecar as MorrisLecar,
)
from ._neurons.cfc import (
    AbstractCfC as AbstractCfC,
    CfC as CfC,
    DiagonalCfC as DiagonalCfC,
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
from ._neurons.timescale import TimeScaled as TimeScaled
from ._solution import (
    RESULTS as RESULTS,
    Solution as Solution,
    SolveError as SolveError,
)
from ._solve.auto import Auto as Auto
from ._solve.base import AbstractLiquidSolver as AbstractLiquidSolver
from ._solve.linear_scan import (
    AbstractRecurrence as AbstractRecurrence,
    AssociativeScan as AssociativeScan,
    linear_recurrence as linear_recurrence,
    SequentialScan as SequentialScan,
)
from ._solve.newton import ParallelNewton as ParallelNewton
from ._solve.ode import ODE as ODE
from ._solve.sequential import Sequential as Sequential
from ._solve.sharded import (
    sharded_linear_recurrence as sharded_linear_recurrence,
    ShardedScan as ShardedScan,
)
from ._solve.solve import (
    solve as solve,
    solve_parallel as solve_parallel,
    solve_sequential as solve_sequential,
)


__version__ = _metadata.version("lrc_toolkit")
