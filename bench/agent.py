"""What the agent rules cost per note, against parsing the note (what every vault event
already pays), on one generated vault, measured in one run.

    python bench/agent.py [--notes 5000] [--runs 3]

Measures, in process (no database, no broker, no file writes): parse only (the baseline),
the rules in suggestion mode and in apply mode (parse, auto-tag, mentions of every other
note's title and aliases, the edited text), and building the index of titles and aliases
that agent-tasks rebuilds when the cache changed. Besides the vault's own titles and aliases,
the index holds a note per generated word and per pair of words, so the text mentions many.
Prints notes/s (median) and the ratio to parse-only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vaultgen import WORDS, generate

from weavenn_cli.runtime.agent.engine import Agent
from weavenn_cli.runtime.agent.matching import CandidateIndex
from weavenn_cli.runtime.agent.rules import DEFAULT_RULES, load_rules
from weavenn_cli.runtime.vault.cache import Resolver
from weavenn_cli.runtime.vault.parser import parse_note


def rate(count: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = generate(root, args.notes)
        contents = {path: (root / path).read_bytes() for path in paths}
    notes = {path: parse_note(path, content) for path, content in contents.items()}
    names = [(path, note.title, note.aliases) for path, note in notes.items()]
    # The generated text is made of WORDS: notes named after them and their pairs give the
    # rules something to find (as a vault of topics would).
    topics = [w for w in WORDS if len(w) >= 3]
    names += [(f"topics/{w}.md", w.title(), []) for w in topics]
    names += [(f"topics/{a} {b}.md", f"{a.title()} {b}", []) for a in topics for b in topics]
    rules = load_rules(DEFAULT_RULES)
    index = CandidateIndex.build(names, rules.links.min_length)
    resolver = Resolver(path for path, _, _ in names)
    suggest = Agent(rules, rules.max_tags, apply_links=False)
    apply = Agent(rules, rules.max_tags, apply_links=True)

    def each(fn: Callable[[str, bytes], object]) -> Callable[[], None]:
        return lambda: [fn(path, content) for path, content in contents.items()] and None

    measures = {
        "parse only (baseline)": each(lambda p, c: parse_note(p, c)),
        "rules, suggestions": each(lambda p, c: suggest.run(p, c, index, resolver)),
        "rules, apply links": each(lambda p, c: apply.run(p, c, index, resolver)),
        "build the names index": lambda: (
            CandidateIndex.build(names, rules.links.min_length) and None
        ),
    }
    results = {
        name: [rate(len(paths), work) for _ in range(args.runs)] for name, work in measures.items()
    }
    found = sum(len(suggest.run(p, c, index, resolver).suggestions) for p, c in contents.items())
    print(
        f"{len(paths)} notes, {len(index.by_key)} names, {found / len(paths):.1f} suggestions/note"
    )
    baseline = statistics.median(results["parse only (baseline)"])
    print("| measure | notes/s (median) | runs | ratio to parse |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        median = statistics.median(runs)
        shown = ", ".join(f"{r:,.0f}" for r in runs)
        print(f"| {name} | {median:,.0f} | {shown} | {median / baseline:.2f} |")


if __name__ == "__main__":
    main()
