"""Single photo → codes + texture: image IO, MediaPipe landmarks, landmark + photometric fitting, UV unwrapping.

OpenMP worker threads (torch's and numba's) spin while idle by default; on a busy 2-core machine the
spinning threads take the cores from the thread doing the work and every small op waits for a time
slice (measured: 0.35 s → 0.06 s CPU per photometric step with ``OMP_WAIT_POLICY=PASSIVE``). The
variable only acts when set before the OpenMP runtime loads (before ``import torch``), so it is set
here, without overriding a user's own choice.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
