"""The daemon's `--trace-phases` lines (crates/berth-engine/src/timing.rs), for the
bench scripts that report them (bench/daemon/phases.sh, bench/daemon/ab.sh)."""
import re

LINE = re.compile(r"phases (\w+) \S+ ([\d.]+) ms:(.*)")


def parse(text):
    """(operation, total ms, {phase: ms}) of one log line, or None if it is not one."""
    m = LINE.search(text)
    if not m:
        return None
    # (The daemon's text log quotes the message: stop at the quote.)
    parts = dict(kv.split("=") for kv in m.group(3).split('"')[0].split())
    return m.group(1), float(m.group(2)), {k: float(v) for k, v in parts.items()}
