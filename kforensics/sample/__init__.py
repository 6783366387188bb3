"""The synthetic sample: a simulated cluster's day with an incident, as audit logs in every shape.

`write_samples` writes data/samples (`kforensics sample DIR`); `write_native_lines` writes benign
background traffic of any size (`kforensics sample --background N`, the benchmarks); the `to_*`
converters give one event in a cloud's export shape. The modules: world (clock, identities,
the events of a request), objects (Kubernetes objects), background (benign traffic), story
(setup), incident (the attack), shapes (cloud shapes), generate (the files).
"""

from .generate import *  # noqa: F403 (the entry points are generate's __all__)
from .generate import __all__ as __all__
