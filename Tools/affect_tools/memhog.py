"""`--memory-pressure` for the benchmark scripts: the timed engines run on CPU 0 while Tools/memhog streams memory
on the last CPU.

On an otherwise idle machine a one-thread benchmark has the whole L3 and memory bandwidth; a worker on a busy
server does not, and an engine that leans on the cache loses more there. This makes that condition repeatable:
every child started afterwards inherits the CPU 0 affinity, and the hog is killed when this process exits.
"""
import atexit
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACTIVE = [False]


def start_memory_pressure(megabytes=256):
    """Builds and starts the hog on the last CPU this process may use and confines this process to the first.
    Exits if there is only one CPU (the hog would share the timed core)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--memory-pressure needs two CPUs: one for the engines, one for the hog")
    exe = os.path.join(tempfile.mkdtemp(), "memhog")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "memhog", "memhog.c")], check=True)
    hog = subprocess.Popen([exe, str(megabytes)])
    os.sched_setaffinity(hog.pid, {cpus[-1]})
    os.sched_setaffinity(0, {cpus[0]})
    atexit.register(lambda: (hog.kill(), hog.wait()))
    ACTIVE[0] = True
