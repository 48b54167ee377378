"""README's tour as a test: find its command blocks, split them into commands, run them.

The README is written for people; a few conventions in its comments tell this harness what
a person would see:

- `# … Ctrl-C stops it`: the command runs in the foreground until stopped. The harness
  starts it, waits for its `is up` line, presses Ctrl-C (SIGINT), and expects it to stop
  cleanly (exit 0, or 130 for an interrupt).
- `# … → TEXT`: the command's output shows TEXT (e.g. `curl … # → "status": "ok"`).
- `# … (exit N)`: the command fails on purpose, with exit code N; every other command
  must exit 0.

Blocks are the ```bash fences of one README section, run in order, each command in its own
`bash -c` with the working folder and exported variables the commands before it left (so
`cd` and `export` carry over, as in one terminal). A command spans several lines when bash
needs them (a heredoc, a trailing backslash). The section's block that follows a paragraph
saying "clean up" is the teardown: the test runs it last, whatever happened before.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOUR = "## A five-minute tour"
FENCE = re.compile(r"^```(\w*)\s*$")
EXIT = re.compile(r"\(exit (\d+)\)")
ARROW = re.compile(r"→\s*(.+?)\s*$")
CTRL_C = "Ctrl-C stops it"
UP_LINE = re.compile(r"\bis up\b")


@dataclass(frozen=True)
class Block:
    line: int  # README line of the first command line (1-based)
    text: str
    teardown: bool = False


@dataclass(frozen=True)
class Command:
    line: int
    text: str  # as written, comments included
    code: str  # what bash runs (comments and all)
    comment: str = ""

    @property
    def blocking(self) -> bool:
        return CTRL_C in self.comment

    @property
    def exit_code(self) -> int:
        found = EXIT.search(self.comment)
        return int(found.group(1)) if found else 0

    @property
    def shows(self) -> str | None:
        found = ARROW.search(self.comment)
        return found.group(1) if found else None


def section(text: str, heading: str) -> tuple[int, list[str]]:
    """The lines of the README section under `heading` (up to the next `## `), and the
    1-based line number of its first line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == heading or line.startswith(heading + " "):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
            return i + 2, lines[i + 1:end]
    raise LookupError(f"README has no section {heading!r}")


def bash_blocks(text: str, heading: str = TOUR) -> list[Block]:
    """The ```bash blocks of a section, in order; the one after a paragraph saying "clean up"
    is the teardown."""
    first, lines = section(text, heading)
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence or not fence.group(1):
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if fence.group(1) in ("bash", "sh", "shell"):
            blocks.append(Block(first + i + 1, "\n".join(lines[i + 1:end]) + "\n",
                                "clean up" in paragraph_before(lines, i).lower()))
        i = end + 1
    return blocks


def paragraph_before(lines: list[str], i: int) -> str:
    """The text of the paragraph that ends just above line `i` (blank lines skipped)."""
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    end = j + 1
    while j >= 0 and lines[j].strip():
        j -= 1
    return " ".join(lines[j + 1:end])


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's code and its trailing `#` comment (quotes respected)."""
    quote = ""
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def complete(code: str) -> bool:
    """Whether bash can parse `code` as it stands (no open heredoc, quote or backslash)."""
    if code.rstrip().endswith("\\"):
        return False
    checked = subprocess.run(["bash", "-n"], input=code, text=True, capture_output=True)
    # An open heredoc is only a warning to `bash -n`: it would run to the end of the input.
    return checked.returncode == 0 and "here-document" not in checked.stderr


def commands(block: Block) -> list[Command]:
    """The block's commands: each is one line, or as many as bash needs to parse it."""
    found: list[Command] = []
    pending: list[str] = []
    start = 0
    for offset, line in enumerate(block.text.splitlines()):
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = block.line + offset
        pending.append(line)
        code = "\n".join(pending) + "\n"
        if complete(code):
            comments = [split_comment(p)[1] for p in pending]
            found.append(Command(start, "\n".join(pending), code, " ".join(c for c in comments if c)))
            pending = []
    if pending:
        raise ValueError(f"README.md:{start}: bash cannot parse {''.join(pending)!r}")
    return found


@dataclass
class Ran:
    command: Command
    exit_code: int
    output: str
    seconds: float


@dataclass
class Shell:
    """One terminal: a working folder and exported variables, carried from command to command."""

    cwd: Path
    env: dict[str, str]
    timeout: float = 900.0
    up_timeout: float = 180.0
    history: list[Ran] = field(default_factory=list)

    def run(self, command: Command) -> Ran:
        started = time.monotonic()
        if command.blocking:
            code, output = self._foreground(command)
        else:
            code, output = self._carrying(command)
        ran = Ran(command, code, output, time.monotonic() - started)
        self.history.append(ran)
        return ran

    def _carrying(self, command: Command) -> tuple[int, str]:
        with tempfile.TemporaryDirectory(prefix="tour-") as tmp:
            state = Path(tmp)
            # The command as written, then what it left: its exit code, folder and exports.
            script = (command.code + "\n__tour_rc=$?\n"
                      f"pwd >{state / 'cwd'}\nenv -0 >{state / 'env'}\nexit $__tour_rc\n")
            done = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=self.timeout)
            if (state / "cwd").exists():
                self.cwd = Path((state / "cwd").read_text().strip())
                pairs = (state / "env").read_text().split("\0")
                self.env = dict(p.split("=", 1) for p in pairs if "=" in p)
                for shells_own in ("PWD", "OLDPWD", "SHLVL", "_"):
                    self.env.pop(shells_own, None)
            return done.returncode, done.stdout

    def _foreground(self, command: Command) -> tuple[int, str]:
        """Start it, wait for `is up`, then Ctrl-C (SIGINT to its process group)."""
        proc = subprocess.Popen(["bash", "-c", command.code], cwd=self.cwd, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, bufsize=0, start_new_session=True)
        assert proc.stdout is not None
        seen = _read_until(proc.stdout.fileno(), UP_LINE, time.monotonic() + self.up_timeout)
        if not UP_LINE.search(seen):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return -1, seen + f"\n(harness: no `is up` line within {self.up_timeout:.0f} s)"
        os.killpg(proc.pid, signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return -1, seen + "\n(harness: still running 60 s after Ctrl-C)"
        return proc.returncode, seen + rest.decode(errors="replace")


def _read_until(fd: int, pattern: re.Pattern[str], deadline: float) -> str:
    """What the process printed until `pattern` shows, it closes its output, or the deadline."""
    import select

    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
        if pattern.search(seen.decode(errors="replace")):
            break
    return seen.decode(errors="replace")


def check(ran: Ran) -> str | None:
    """What went wrong with one command of the tour, as a person would see it; None if nothing."""
    cmd = ran.command
    where = f"README.md:{cmd.line}: {cmd.text.splitlines()[0]}"
    tail = "\n".join(ran.output.splitlines()[-40:])
    allowed = {cmd.exit_code, 130} if cmd.blocking else {cmd.exit_code}
    if ran.exit_code not in allowed:
        return f"{where}\n  exited {ran.exit_code}, README promises {cmd.exit_code}\n{tail}"
    if cmd.shows is not None and cmd.shows not in ran.output:
        return f"{where}\n  README promises output with {cmd.shows!r}; it printed:\n{tail}"
    return None


def run_tour(shell: Shell, blocks: list[Block], on_ran: Callable[[Ran], None] = lambda r: None,
             excused: Callable[[Ran], bool] = lambda r: False) -> None:
    """Run every command of the non-teardown blocks in order; stop at the first that fails
    (unless `excused` says its failure is the machine's, not the tour's)."""
    for block in blocks:
        if block.teardown:
            continue
        for command in commands(block):
            ran = shell.run(command)
            on_ran(ran)
            problem = check(ran)
            if problem and not excused(ran):
                raise AssertionError(problem)
