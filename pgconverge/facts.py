"""pgconverge's pyinfra facts, at the import path deploy files use: ``from pgconverge import facts``.

They are defined in ``pgconverge.pyinfra.facts``.
"""

from pgconverge.pyinfra.facts import *  # noqa: F401,F403
from pgconverge.pyinfra.facts import __all__  # noqa: F401
