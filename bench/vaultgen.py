"""A realistic Obsidian vault of N notes, for benchmarks (deterministic for a given seed).

Each note has YAML frontmatter (title, tags, aliases, type, dates), headings, paragraphs,
10-20 links (wikilinks with aliases, headings and blocks, embeds, Markdown links, about 5%
to notes that do not exist), inline tags (some nested) and a code block whose `#` lines are
not tags. Notes live in nested folders, and some names repeat in different folders so link
resolution has to choose.

    python bench/vaultgen.py /tmp/vault --notes 10000
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

WORDS = [
    "graph",
    "note",
    "link",
    "vault",
    "event",
    "queue",
    "consumer",
    "cache",
    "shadow",
    "index",
    "search",
    "migration",
    "rollout",
    "cluster",
    "service",
    "deploy",
    "manifest",
    "schema",
    "table",
    "column",
    "backfill",
    "verify",
    "shadow",
    "traffic",
    "percentage",
    "bucket",
    "knowledge",
    "research",
    "idea",
    "draft",
    "review",
    "meeting",
    "project",
    "task",
    "decision",
    "context",
    "summary",
    "insight",
    "pattern",
    "tradeoff",
    "latency",
    "throughput",
    "replica",
    "partition",
]
FOLDERS = [
    "",
    "inbox",
    "projects",
    "projects/alpha",
    "projects/beta",
    "areas/ops",
    "areas/research",
    "journal/2024",
    "journal/2025",
    "references",
    "archive/old",
    "archive/older/deep",
]
TYPES = ["concept", "project", "meeting", "reference", "journal"]
TAGS = [
    "idea",
    "todo",
    "review",
    "project/alpha",
    "project/beta",
    "area/ops",
    "research/ml",
    "draft",
    "decision",
    "reference",
]


def note_paths(count: int, rng: random.Random) -> list[str]:
    paths = []
    for index in range(count):
        folder = FOLDERS[index % len(FOLDERS)]
        # One note in twenty shares its name with a note in another folder.
        name = f"Note {index // 2 if index % 20 == 0 else index}"
        path = f"{folder}/{name}.md" if folder else f"{name}.md"
        if path not in paths[-50:]:
            paths.append(path)
        else:
            paths.append(f"{folder}/{name} b.md")
    rng.shuffle(paths)
    return paths


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def link(rng: random.Random, paths: list[str]) -> str:
    if rng.random() < 0.05:
        return f"[[Missing {rng.randrange(10_000)}]]"
    target = rng.choice(paths)[:-3]
    short = target.rsplit("/", 1)[-1]
    roll = rng.random()
    if roll < 0.45:
        return f"[[{short}]]"
    if roll < 0.6:
        return f"[[{short}|{rng.choice(WORDS)}]]"
    if roll < 0.72:
        return f"[[{target}#Section {rng.randrange(1, 4)}]]"
    if roll < 0.8:
        return f"[[{short}#^block{rng.randrange(100)}]]"
    if roll < 0.88:
        return f"![[{short}]]"
    return f"[{rng.choice(WORDS)}]({target.replace(' ', '%20')}.md)"


def note_text(index: int, path: str, paths: list[str], rng: random.Random) -> str:
    title = path.rsplit("/", 1)[-1][:-3]
    tags = rng.sample(TAGS, rng.randrange(1, 4))
    lines = [
        "---",
        f"title: {title}",
        f"tags: [{', '.join(tags)}]",
        f"aliases: [{title} alias, N{index}]",
        f"type: {rng.choice(TYPES)}",
        f"created: 2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "---",
        f"# {title}",
        "",
    ]
    links = [link(rng, paths) for _ in range(rng.randrange(10, 21))]
    for section in range(1, 4):
        lines.append(f"## Section {section}")
        for _ in range(rng.randrange(2, 4)):
            words = [sentence(rng, rng.randrange(8, 20)) for _ in range(3)]
            while links and rng.random() < 0.6:
                words.insert(rng.randrange(len(words) + 1), links.pop())
            if rng.random() < 0.3:
                words.append(f"#{rng.choice(TAGS)}")
            lines += [" ".join(words) + f" ^block{rng.randrange(100)}", ""]
        if section == 2:
            lines += ["```python", "# a comment, not a #tag", "print('[[not a link]]')", "```", ""]
    lines.append(" ".join(links))
    return "\n".join(lines) + "\n"


def generate(root: Path, count: int = 10_000, seed: int = 42) -> list[str]:
    """Write `count` notes under `root`; returns their vault-relative paths."""
    rng = random.Random(seed)
    paths = note_paths(count, rng)
    for index, path in enumerate(paths):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(note_text(index, path, paths, rng), encoding="utf-8")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    paths = generate(args.root, args.notes, args.seed)
    print(f"{len(paths)} notes in {args.root}")


if __name__ == "__main__":
    main()
