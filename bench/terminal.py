"""Run a command on a terminal, as a person at a shell would: stdin and stdout on one
pseudo-terminal, stderr on another (so a refusal can still be read as stderr alone), both
120 x 50. What the command drew is read back as the final screens of a VT100 emulator
(pyte), so spinners and progress bars that erased themselves are gone, as for the person.

Used by ``bench/hostile.py --tty`` and ``bench/hostile_resources.py``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass

import pyte

#: The wrapper: runs argv[2:] on two pseudo-terminals with argv[1] seconds to finish, writes
#: its stdin bytes to the terminal, and prints one JSON line (exit code, -9 when killed at
#: the limit; peak RSS of the command in KiB; what each terminal showed, base64).
WRAPPER = r'''
import base64, fcntl, json, os, pty, resource, select, signal, struct, subprocess, sys
import termios, time
limit, argv = float(sys.argv[1]), sys.argv[2:]
ends = [pty.openpty(), pty.openpty()]
for master, slave in ends:
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
(m_out, s_out), (m_err, s_err) = ends
p = subprocess.Popen(argv, stdin=s_out, stdout=s_out, stderr=s_err, start_new_session=True)
os.close(s_out); os.close(s_err)
os.write(m_out, sys.stdin.buffer.read())
got = {m_out: bytearray(), m_err: bytearray()}
open_ends, deadline, code = {m_out, m_err}, time.monotonic() + limit, None
while open_ends:
    left = deadline - time.monotonic()
    if left <= 0:
        os.killpg(p.pid, signal.SIGKILL); p.wait(); code = -9
        break
    ready, _, _ = select.select(list(open_ends), [], [], min(left, 0.5))
    for fd in ready:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            chunk = b""
        if chunk:
            got[fd] += chunk[:8 << 20]
        else:
            open_ends.discard(fd)
    if p.poll() is not None and not ready:
        break
if code is None:
    code = p.wait()
print(json.dumps({"code": code,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "out": base64.b64encode(bytes(got[m_out])).decode(),
                  "err": base64.b64encode(bytes(got[m_err])).decode()}))
'''


@dataclass
class Shown:
    """What a command left on its two terminals (final screens, trailing blanks dropped),
    its exit code (-9: killed at the time limit) and its peak RSS in KiB."""

    code: int
    stdout: str
    stderr: str
    peak_kib: int

    @property
    def hung(self) -> bool:
        return self.code == -9


def screen(raw: bytes, columns: int = 4000, lines: int = 50) -> str:
    """The text a VT100 terminal of ``lines`` shows after ``raw`` (what scrolled off the top
    is lost, as on the terminal). The command is told its terminal is 120 columns wide; the
    emulator is wider, so a long line the terminal would wrap stays one line (a person sees
    one line wrapped, not two)."""
    s = pyte.Screen(columns, lines)
    pyte.ByteStream(s).feed(raw)
    return "\n".join(line.rstrip() for line in s.display).strip("\n")


def on_terminal(argv: list[str], timeout: float, env: dict[str, str],
                stdin: bytes = b"") -> Shown:
    """Run ``argv`` on two terminals (see the module's docstring)."""
    r = subprocess.run([sys.executable, "-c", WRAPPER, str(timeout), *argv], input=stdin,
                       capture_output=True, timeout=timeout + 60, env=env)
    data = json.loads(r.stdout.decode().strip().splitlines()[-1])
    return Shown(data["code"], screen(base64.b64decode(data["out"])),
                 screen(base64.b64decode(data["err"])), data["peak_kib"])
