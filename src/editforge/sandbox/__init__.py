"""Run untrusted Python programs (model completions plus hidden tests) in isolation.

One isolation path, the same for root and for an ordinary user, needing neither
root nor a setuid helper (Linux 5.3 or later; 5.14 or later for the process cap
to count per run):

* **Namespaces** (``userns``): each worker thread has a zygote, a small
  long-lived process, so that no interpreter starts per program but the
  program's own. For each program it forks a child that creates an unprivileged
  user namespace with new mount, PID, network, IPC and UTS namespaces, and times
  the run. An ordinary caller's uid and gid are mapped to themselves; for root
  they are mapped too, and the program runs as ``nobody`` (65534, or
  ``EDITFORGE_SANDBOX_UID``), because the kernel exempts uid 0 from the process
  cap. The namespace's init (it reaps orphans) ``pivot_root``s into a new root:

  - read-only bind mounts of what a program needs: the interpreter's prefixes
    and site-packages, the system directories (``/usr``, ``/lib*``, ``/bin``,
    ``/sbin``), a few files of ``/etc`` (the dynamic linker's cache, time zone,
    certificates, fonts) and a written ``passwd``, ``group``, ``hosts``;
  - ``/dev`` with only ``null``, ``zero``, ``full``, ``random``, ``urandom`` and
    the ``fd`` links; a fresh ``/proc`` showing only the program's processes;
  - one private, size-capped tmpfs on ``/tmp`` holding the working directory
    ``/tmp/work`` (also HOME and TMPDIR) and backing ``/dev/shm``.

  Nothing else exists inside: not the project tree, ``results/``, the benchmark
  file, the home directory, ``/run``, the host's ``/tmp`` or ``/dev/shm``. The
  network namespace has only its own loopback (abstract unix sockets are per
  network namespace too). The program runs with no capabilities,
  ``PR_SET_NO_NEW_PRIVS`` and its limits. When it ends (or the wall clock runs
  out and the child is killed) the init exits and the kernel kills everything
  left in the PID namespace, daemons included.
* **bubblewrap** (``bwrap``): where unprivileged user namespaces are disabled,
  the same layout through ``bwrap`` if it is on the PATH (a setuid ``bwrap``
  works without them).
* Where neither works, ``select_isolation`` refuses with one line naming the
  cause and the remedy. Running without isolation (``none``: limits, a fresh
  directory and a scrubbed environment only) must be asked for by name.

Files:

* ``types.py``: outcomes (and their rules), limits, the isolation, constants, the programs' text.
* ``run.py``: ``run_program``, ``run_many``, the runner's limits and the outcome of a run.
* ``isolation.py``: ``select_isolation``: probing each mechanism, the kernel settings to blame.
* ``zygote.py``: the parent side of the zygote; the new root's binds, links, /etc and environment.
* ``bwrap.py``: the bubblewrap path.
* ``programs/``: what runs inside (runner, zygote, interpreter query, uid drop), passed as text with ``-c``.
"""

from editforge.sandbox.isolation import select_isolation
from editforge.sandbox.run import run_many, run_program
from editforge.sandbox.types import OUTCOMES, SANDBOX_SETTINGS, Isolation, Limits, SandboxError, SandboxResult

__all__ = [
    "Isolation",
    "Limits",
    "OUTCOMES",
    "SANDBOX_SETTINGS",
    "SandboxError",
    "SandboxResult",
    "run_many",
    "run_program",
    "select_isolation",
]
