"""A process's CPU time and memory from /proc, for the benches that watch the process they
measure (bench/controller.py, bench/stream.py) and the tests that bound what one spends."""
import os
import re


def cpu_s(pid):
    """User + system CPU seconds of a process so far (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, field):
    """VmHWM (peak resident set) or VmRSS (now) of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"%s:\s+(\d+)" % field, f.read()).group(1))
