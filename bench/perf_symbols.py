"""Self time per symbol from a perf.data file, naming our own functions
even where this machine's perf (6.1) cannot read the Rust binary's symbols
and prints bare offsets: those are mapped to addresses with the binary's
program headers and named with addr2line.

    python3 bench/perf_symbols.py perf.data path/to/binary [top=30]
"""
import collections
import re
import subprocess
import sys


def load_segments(binary):
    """(file offset, size, vaddr) of each LOAD segment."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    segments = []
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            segments.append((int(fields[1], 16), int(fields[4], 16), int(fields[2], 16)))
    return segments


def to_address(offset, segments):
    for start, size, vaddr in segments:
        if start <= offset < start + size:
            return offset - start + vaddr
    return offset


def main():
    data, binary = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                             "-g", "none"], capture_output=True, text=True).stdout
    segments = load_segments(binary)
    totals = collections.Counter()
    unnamed = []
    for line in report.splitlines():
        match = re.match(r"\s+([\d.]+)%\s+(.+?)\s+\[(.)\]\s+(.*)$", line)
        if not match:
            continue
        percent, dso, symbol = float(match[1]), match[2].strip(), match[4].strip()
        if dso.startswith("[JIT]"):
            totals["guest code (compiled wasm, [JIT])"] += percent
        elif symbol.startswith("0x") and binary.endswith(dso):
            unnamed.append((percent, to_address(int(symbol, 16), segments)))
        else:
            totals[f"{dso} {symbol}"[:110]] += percent
    if unnamed:
        names = subprocess.run(["addr2line", "-f", "-C", "-e", binary] + [hex(a) for _, a in unnamed],
                               capture_output=True, text=True).stdout.splitlines()[::2]
        for (percent, _), name in zip(unnamed, names):
            totals[re.sub(r"::h[0-9a-f]{16}$", "", name)[:110]] += percent
    for name, percent in totals.most_common(top):
        print(f"{percent:6.2f}%  {name}")


if __name__ == "__main__":
    main()
