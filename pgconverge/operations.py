"""pgconverge's pyinfra operations, at the import path deploy files use: ``from pgconverge import operations``.

They are defined in ``pgconverge.pyinfra.operations``.
"""

from pgconverge.pyinfra.operations import *  # noqa: F401,F403
from pgconverge.pyinfra.operations import __all__  # noqa: F401
