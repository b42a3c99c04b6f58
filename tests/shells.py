"""Shell completion in real shells, for tests/e2e/test_completion.py: installing
goproc's completion scripts and asking bash, zsh and fish what TAB offers.

- bash: the script is sourced in `bash --norc`, its completion function called with
  COMP_WORDS/COMP_CWORD set; COMPREPLY is what bash would insert.
- fish: `complete -C LINE` in `fish --no-config`: the candidates, as values.
- zsh: completion works only inside the line editor, so an interactive `zsh -f` runs on
  a pseudo-terminal (zsh/zpty), with compinit and the script on $fpath as the rc line
  cyclopts adds would have them; each line is typed with a TAB, a `compadd` wrapper
  records the matches and a key writes back the line as completion left it.

The scripts reach the daemon through `goproc __complete`: a `goproc` on PATH that runs
`python -m goproc` here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import GOPROC


def needs(shell: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(shell) is None, reason=f"{shell} is not installed (.ci/run installs it)"
    )


def install_completion(
    shell: str, script: Path, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`goproc --install-completion` writing into `script` only, with HOME at `home`."""
    args = ["--install-completion", "--output", str(script), "--no-add-to-startup"]
    return subprocess.run(
        [*GOPROC, *args, *(["--shell", shell] if shell else [])],
        env={**os.environ, "HOME": str(home), "SHELL": f"/bin/{shell}", **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


class Shells:
    """Runs completions in each shell against the daemon of `env`, in `cwd`.  A line is
    what is typed before TAB: its words are separated by single spaces, and a trailing
    space completes an empty word."""

    def __init__(self, scripts: dict[str, Path], env: dict[str, str], cwd: Path) -> None:
        self.scripts, self.cwd = scripts, cwd
        bin_dir = cwd / "bin"
        bin_dir.mkdir(exist_ok=True)
        wrapper = bin_dir / "goproc"
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(GOPROC)} "$@"\n')
        wrapper.chmod(0o755)
        self.env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"}

    def complete(self, shell: str, lines: list[str]) -> list[list[str]]:
        """What TAB offers at the end of each line: bash's COMPREPLY (quoted as bash
        inserts them), fish's and zsh's candidate values."""
        if shell == "zsh":
            return [candidates for candidates, _ in self.zsh(lines)]
        return self.bash(lines) if shell == "bash" else self.fish(lines)

    def run(self, args: list[str], timeout: float = 120) -> str:
        out = subprocess.run(
            args, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=timeout
        )
        assert out.returncode == 0, out.stderr
        assert out.stderr == "", out.stderr  # completion says nothing
        return out.stdout

    def bash(self, lines: list[str]) -> list[list[str]]:
        program = [
            f"source {shlex.quote(str(self.scripts['bash']))}",
            "fn=$(complete -p goproc | sed -E 's/.*-F ([^ ]+).*/\\1/')",
            'at_tab() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*";'
            " COMP_POINT=${#COMP_LINE}; COMPREPLY=();"
            ' "$fn" goproc "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}";'
            " printf '%s\\n' \"${COMPREPLY[@]}\"; printf '\\036\\n'; }",
        ]
        program += [f"at_tab {shlex.join(line.split(' '))}" for line in lines]
        return _records(self.run(["bash", "--norc", "--noprofile", "-c", "\n".join(program)]))

    def fish(self, lines: list[str]) -> list[list[str]]:
        program = (
            f"source {shlex.quote(str(self.scripts['fish']))}; "
            "for line in $argv; complete -C $line; printf '\\036\\n'; end"
        )
        out = self.run(["fish", "--no-config", "-c", program, *lines])
        return [[c.partition("\t")[0] for c in record] for record in _records(out)]

    def zsh(self, lines: list[str]) -> list[tuple[list[str], str]]:
        """Each line's matches and the line as TAB left it."""
        log = self.cwd / "zsh.log"
        log.unlink(missing_ok=True)
        setup = self.cwd / "zsh-setup.zsh"
        setup.write_text(ZSH_SETUP)
        driver = self.cwd / "zsh-drive.zsh"
        driver.write_text(ZSH_DRIVER)
        env = {"ZFUNC": str(self.scripts["zsh"].parent), "COMPLETION_LOG": str(log)}
        self.env, saved = {**self.env, **env}, self.env
        try:
            self.run(["zsh", "-f", str(driver), str(setup), *lines])
        finally:
            self.env = saved
        results: list[tuple[list[str], str]] = []
        matches: list[str] = []
        for entry in log.read_text().split("\n")[:-1]:
            kind, _, text = entry.partition(" ")
            if kind == "m":
                matches.append(text)
            else:
                results.append((matches, text))
                matches = []
        assert len(results) == len(lines), log.read_text()
        return results


def _records(out: str) -> list[list[str]]:
    """Output in records ended by a line holding only \\x1e."""
    return [[x for x in r.split("\n") if x] for r in out.split("\x1e\n")[:-1]]


# Sourced by an interactive `zsh -f` on a pty: completion set up as the rc line cyclopts
# adds sets it up; `compadd` logs each match ("m MATCH"), Ctrl-T the line ("b LINE").
ZSH_SETUP = r"""
PROMPT='' RPROMPT='' PS2=''
fpath=("$ZFUNC" $fpath)
autoload -Uz compinit && compinit -u -D
zstyle ':completion:*' insert-tab false
# Matches are logged, not listed: a long list would stop at a "see all?" question.
unsetopt auto_list auto_menu beep
compadd() {
  # A call that only asks what would match (-O, -A, -D) is the completion system's own.
  if (( ${@[(I)-[OAD]]} )); then builtin compadd "$@"; return; fi
  local -a found
  builtin compadd -O found "$@"
  (( $#found )) && print -rl -- "${(@)found/#/m }" >> "$COMPLETION_LOG"
  builtin compadd "$@"
}
log_line() { print -r -- "b $BUFFER" >> "$COMPLETION_LOG" }
zle -N log_line
bindkey '^T' log_line
print READY
"""

# `zsh -f zsh-drive.zsh SETUP LINE...`: type each LINE, TAB, Ctrl-T, Ctrl-U (the line
# cleared for the next one); wait for each line's entry in the log.
ZSH_DRIVER = r"""
zmodload zsh/zpty || exit 3
zpty -b shell zsh -f -i
zpty -w shell "source ${(q)1}"
zpty -r shell line '*READY*' || exit 4
: >> $COMPLETION_LOG
shift
integer n=0 i
for typed in "$@"; do
  (( n++ ))
  zpty -w -n shell "$typed"$'\t\x14\x15'
  for (( i = 0; i < 400; i++ )); do
    # Drain what the shell writes to its terminal: a full pty would stop it.
    while zpty -r -t shell echoed; do :; done
    logged=(${(M)${(f)"$(<$COMPLETION_LOG)"}:#b *})
    (( $#logged >= n )) && break
    sleep 0.05
  done
done
zpty -d shell
"""


def offered(shell: str, found: list[str]) -> set[str]:
    """Candidates as values: bash's unquoted (a `\\ ` stays in words with spaces)."""
    return {x.replace("\\ ", " ") if shell == "bash" else x for x in found}
