"""Splice the benchmark's Markdown output into README.md's "Performance" section.

    python -m jaxconv bench --markdown benchmarks/results/bench_cpu.md ...
    python -m jaxconv bench --kernels --markdown benchmarks/results/kernels_cpu.md ...
    python benchmarks/update_readme.py

replaces the text between the ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
markers with ``benchmarks/results/NAME.md``, verbatim; ``NAME_summary`` takes the
first line of ``NAME.md`` and its "over all layers" table.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for name in re.findall(r"<!-- bench:(\w+) -->", text):
        base = name.removesuffix("_summary")
        body = (ROOT / "benchmarks" / "results" / f"{base}.md").read_text().strip()
        if base != name:
            body = body.splitlines()[0] + "\n\n" + body[body.index("over all layers"):]
        text = re.sub(rf"(<!-- bench:{name} -->\n)(?:.*?\n)?(<!-- /bench:{name} -->)",
                      lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text,
                      flags=re.S)
    readme.write_text(text)


if __name__ == "__main__":
    main()
