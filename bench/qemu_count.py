"""Guest instructions executed, from a qemu user-mode log of `-d in_asm,exec,nochain`.

`in_asm` prints every translated block's instructions once; `exec` (with `nochain`, so that
no block jumps straight into the next one unlogged) prints a line per block executed. The
count is the sum, over the blocks executed, of their instruction counts.
"""

import re
import sys

TRACE = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
INSN = re.compile(r"^0x([0-9a-f]+):\s")


def count(path):
    sizes, executed = {}, []
    block_start, block_len = None, 0
    with open(path, errors="replace") as log:
        for line in log:
            m = INSN.match(line)
            if m:
                if block_start is None:
                    block_start = int(m.group(1), 16)
                block_len += 1
                continue
            if block_start is not None:
                sizes[block_start] = block_len
                block_start, block_len = None, 0
            t = TRACE.match(line)
            if t:
                executed.append(int(t.group(1), 16))
    if block_start is not None:
        sizes[block_start] = block_len
    missing = sum(1 for pc in executed if pc not in sizes)
    if missing:
        raise SystemExit(f"{path}: {missing} executed blocks were never disassembled")
    return sum(sizes[pc] for pc in executed)


if __name__ == "__main__":
    print(count(sys.argv[1]))
