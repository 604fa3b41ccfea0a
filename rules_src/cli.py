"""`dumont-rules`: validate rules_src, render generated/, and check what is committed."""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from . import explain
from .backtest import command as backtest_command
from .crosscheck import crosscheck
from .loader import SpecError
from .model import Spec
from .render import RenderError, render
from .spec import SPEC_DIR, environments, load
from .tools import check_env
from .writer import UnsafePath, WriteError, write

# In a checkout, generated/ sits beside rules_src/; an installed package renders into ./generated instead
# of into site-packages.
DEFAULT_OUT = (SPEC_DIR.parent / "generated" if (SPEC_DIR.parent / "pyproject.toml").exists()
               else Path("generated"))


def load_all(envs: list[str], spec_dir: Path, overlay: Path | None) -> tuple[dict[str, Spec], list[SpecError]]:
    """The Spec of each environment, and every error of any of them (each reported once)."""
    specs, errors = {}, set()
    for env in envs:
        spec, errs = load(env, spec_dir, overlay)
        errors.update(errs)
        if spec is not None:
            specs[env] = spec
    return specs, sorted(errors)


def render_all(specs: dict[str, Spec]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Rendered files by environment, and the cross-file gaps found in them."""
    rendered, gaps = {}, []
    for env, spec in specs.items():
        rendered[env] = render(spec)
        gaps += crosscheck(spec, rendered[env])
    return rendered, gaps


def tool_failures(root: Path, specs: dict[str, Spec], verbose: bool) -> list[str]:
    """Run promtool and amtool on each environment under `root`; print each step, return the failures."""
    failures = []
    for env, spec in specs.items():
        for step in check_env(root / env, spec):
            if verbose or not step.ok:
                print(f"{'ok  ' if step.ok else 'FAIL'} {step.title}")
            if not step.ok:
                print("     " + brief(step.output).replace("\n", "\n     "))
                failures.append(step.title)
    return failures


def brief(output: str) -> str:
    """A tool's output without the files that passed: promtool lists every test file it ran."""
    lines = [line for line in output.splitlines() if line.strip()]
    keep = []
    for i, line in enumerate(lines):
        passed = line.strip() == "SUCCESS" or (i + 1 < len(lines) and lines[i + 1].strip() == "SUCCESS")
        if not passed and not line.startswith("Warning: --config.file"):
            keep.append(line)
    if any(line.startswith("Unit Testing") for line in keep) and any("FAILED" in line for line in keep):
        # promtool names an alert test's failure by `alertname:`, a recording rule test's by `expr:`.
        if any(line.strip().startswith("alertname:") for line in keep):
            keep.append("(a generated test failed: the rule disagrees with rules_src/contract.yaml, "
                        "or the alert's `test` section does not produce its value)")
        if any(line.strip().startswith("expr:") for line in keep):
            keep.append("(a generated test failed: the recording rule does not record what its `test` in "
                        "rules_src/recording.yaml expects)")
    return "\n".join(keep)


def _prepare(args) -> tuple[dict[str, Spec], dict[str, dict[str, str]]] | None:
    envs = args.env or environments(args.spec)
    specs, errors = load_all(envs, args.spec, getattr(args, "overlay", None))
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s); nothing written", file=sys.stderr)
        return None
    try:
        rendered, gaps = render_all(specs)
    except (RenderError, ValueError) as exc:
        print(f"cannot render: {exc}", file=sys.stderr)
        return None
    for gap in gaps:
        print(gap, file=sys.stderr)
    return None if gaps else (specs, rendered)


def cmd_validate(args) -> int:
    """Validate and render in memory; write nothing."""
    prepared = _prepare(args)
    if prepared:
        print(f"valid: {', '.join(prepared[0])}")
    return 0 if prepared else 1


def cmd_generate(args) -> int:
    """Render, check the result with promtool and amtool, then replace the output atomically."""
    prepared = _prepare(args)
    if not prepared:
        return 1
    specs, rendered = prepared
    try:
        write(args.out, rendered, lambda root: tool_failures(root, specs, verbose=False), whole=not args.env)
    except WriteError as exc:
        print(f"{len(exc.failures)} check(s) failed; {args.out} is unchanged", file=sys.stderr)
        return 1
    except UnsafePath as exc:
        print(f"refusing to write: {exc}; {args.out} is unchanged", file=sys.stderr)
        return 1
    for env, files in rendered.items():
        print(f"wrote {args.out / env} ({len(files)} files)")
    return 0


def cmd_check(args) -> int:
    """Fail when the committed output differs from a fresh render, or when any tool check fails."""
    args.env, args.overlay = None, None
    prepared = _prepare(args)
    if not prepared:
        return 1
    specs, rendered = prepared
    stale = _differences(args.out, rendered)
    for line in stale:
        print(line)
    print(f"{'FAIL' if stale else 'ok  '} {args.out} is what rules_src renders"
          + (" (run `make generate`)" if stale else ""))
    failures = tool_failures(args.out, specs, verbose=True)
    bad = len(failures) + bool(stale)
    print(f"{'FAILED' if bad else 'passed'}: {bad} problem(s)" if bad else "passed: every check")
    return 1 if bad else 0


def cmd_explain(args) -> int:
    """Say when and where an alert pages: its routes, receivers, channels, group key, timings and inhibitions."""
    return explain.run(args, DEFAULT_OUT)


def _differences(out: Path, rendered: dict[str, dict[str, str]]) -> list[str]:
    lines = []
    want = {f"{env}/{rel}": text for env, files in rendered.items() for rel, text in files.items()}
    have = {str(p.relative_to(out)): p for p in sorted(out.rglob("*")) if p.is_file()} if out.is_dir() else {}
    for rel in sorted(set(want) | set(have)):
        if rel not in have:
            lines.append(f"missing: {out / rel}")
        elif rel not in want:
            lines.append(f"extra:   {out / rel}")
        elif have[rel].read_text(encoding="utf-8") != want[rel]:
            lines.append(f"differs: {out / rel}")
            diff = difflib.unified_diff(have[rel].read_text(encoding="utf-8").splitlines(), want[rel].splitlines(),
                                        "committed", "rendered", lineterm="", n=1)
            lines += ["    " + d for d in list(diff)[:20]]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dumont-rules` console script."""
    parser = argparse.ArgumentParser(prog="dumont-rules", description=__doc__)
    parser.add_argument("--spec", type=Path, default=SPEC_DIR, help="the spec directory (default: rules_src/)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("generate", cmd_generate), ("validate", cmd_validate), ("check", cmd_check)):
        p = sub.add_parser(name, help=func.__doc__)
        p.set_defaults(func=func)
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: generated/)")
        if name != "check":
            p.add_argument("--env", action="append", help="an environment to render (repeatable; default: all)")
            p.add_argument("--overlay", type=Path, help="one more overlay, applied last, in the environment format")
    backtest_command.add_parser(sub, DEFAULT_OUT)
    p = sub.add_parser("explain", help=cmd_explain.__doc__, description=explain.DESCRIPTION)
    p.set_defaults(func=cmd_explain)
    explain.add_arguments(p)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
