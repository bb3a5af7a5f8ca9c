"""Generate the performance pages from the committed results in benchmarks/results/.

Run by mkdocs-gen-files at build time (mkdocs.yml, ``plugins: gen-files``), so the
pages show exactly the committed tables and cannot drift from them. Each results
file's first line (the benchmark's header: jax version, dtype, sampling, XLA and
malloc settings) is kept above its table; plots drawn by ``bench --plot`` are copied.
"""

from __future__ import annotations

import pathlib

import mkdocs_gen_files

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# (page, title, machine, results folder, intro, [(section title, file, note)])
PAGES = [
    ("zen3", "AMD EPYC Zen 3 (AVX2): the current tables",
     "2 cores of an AMD EPYC (Zen 3) with AVX2 and no AVX-512, glibc 2.36; float32 "
     "matmul about 100-125 GFLOP/s (each suite table names the median it measured). "
     "Where XLA's and PyTorch's CPU convolutions are both 2-5x slower than on the "
     "AVX-512 machines. jax 0.10.2, torch 2.13.0.", "",
     "The layer suite, the kernel tables behind auto's rules and the probes, written "
     "by the commands named in each section.",
     [("Layer suite", "bench_cpu.md",
       "`python -m jaxconv bench --repeats 7 --markdown ... --json ... --plot ...`: every "
       "impl, auto, raw lax (`jnp.pad` for the mode, then `lax.conv_general_dilated`, "
       "differentiated by JAX) and PyTorch's `nn.ConvNd`; `f+b` is the forward plus the "
       "backward for input, weight and bias."),
      ("Layer suite under XLA's Eigen convolutions", "bench_cpu_eigen.md",
       "`python -m jaxconv bench --xla-cpu-conv eigen`: every JAX variant compiled with "
       "`jaxconv.eigen_conv_options()`, raw lax's too."),
      ("Layer suite with glibc's huge-page advice", "bench_cpu_hugetlb.md",
       "`GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python -m jaxconv bench --repeats 7`; taken "
       "before the padding modes' hand-written adjoint and auto's inference forward."),
      ("Kernels", "kernels_cpu.md",
       "`python -m jaxconv bench --kernels`: each impl's forward, input-gradient and "
       "weight-gradient kernel timed alone, and auto's pick. Taken before auto's "
       "inference forward: its pointwise_1x1 forward row names shift."),
      ("Space-to-depth", "space_to_depth_cpu.md",
       "`python -m jaxconv bench --kernels` on strided stems, patchify and 2x2 layers."),
      ("Strided layers", "strided_cpu.md",
       "`python -m jaxconv bench --kernels --repeats 5` on strided layers."),
      ("Strided layers, forward+backward", "strided_fb_cpu.md",
       "`python -m jaxconv bench --repeats 11` on strided layers: whole programs."),
      ("Per-example gradients", "per_example_cpu.md",
       "`python -m jaxconv bench --per-example`."),
      ("unfold and fold", "unfold_cpu.md", "`python benchmarks/unfold_bench.py`."),
      ("Complex convolutions", "complex_cpu.md", "`python benchmarks/complex_probe.py`."),
      ("Dense 3x3 layers: im2col and Winograd against lax", "dense_cpu.md",
       "`python benchmarks/dense_probe.py` (see the [notes](../performance-notes.md))."),
      ("The same, with raised malloc thresholds", "dense_cpu_malloc.md",
       "`MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 "
       "python benchmarks/dense_probe.py`."),
      ("Padding modes' adjoint", "pad_cpu.md", "`python benchmarks/pad_probe.py`."),
      ("Padding modes' adjoint, hugetlb=1", "pad_cpu_hugetlb.md",
       "`GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/pad_probe.py`."),
      ("malloc settings", "malloc_cpu.md", "`python benchmarks/malloc_probe.py`."),
      ("Measurement noise", "noise_cpu.md",
       "`python benchmarks/noise_probe.py`: two executables of one program; any ratio "
       "but 1 is noise."),
      ("Scaling out", "scaling_cpu.md",
       "`python benchmarks/scaling.py`: step time of `examples/sharded_training.py` "
       "(100 steps of batch 32, 16x16 images; median). The simulated devices share the "
       "machine's 2 cores: this measures what sharding costs, not a speed-up.")]),
    ("zen5", "AMD EPYC Zen 5 (AVX-512)",
     "2 cores of an AMD EPYC, family 26 (Zen 5), with AVX-512, 24 GiB; float32 matmul "
     "200-416 GFLOP/s per layer in its suite run. jax 0.10.2, torch 2.13.0.", "zen5",
     "The project's third machine. auto's forward+backward took 1.14x PyTorch's time in "
     "geometric mean there; the kernel table agrees with auto's rules (auto within 5% of "
     "the fastest kernel) but for late_3x3_512's input gradient, 1.48x faster in shift.",
     [("Layer suite", "bench_cpu.md", "`python -m jaxconv bench --repeats 7`."),
      ("Kernels", "kernels_cpu.md", "`python -m jaxconv bench --kernels --repeats 5`."),
      ("Per-example gradients", "per_example_cpu.md",
       "`python -m jaxconv bench --per-example --repeats 7`, in an earlier run than the suite."),
      ("fold's 3-d forward: input or output side", "fold_side_cpu.md",
       "`python benchmarks/fold_side_probe.py --repeats 41`."),
      ("XLA's CPU libraries", "xla_library_cpu.md",
       "`python benchmarks/xla_library_probe.py`: no XLA option hands a convolution to "
       "oneDNN or XNNPACK."),
      ("1x1 forwards: per image or stacked", "pointwise_cpu.md",
       "`python benchmarks/pointwise_probe.py`: shift's 1x1 forward as one matmul per "
       "image in the NCHW layout, or one matmul over all images (which transposes)."),
      ("Whole networks' convolutions", "networks_cpu.md",
       "`python benchmarks/networks.py`: ten torchvision architectures' convolutions, "
       "auto's forward against raw lax and PyTorch, summed per network."),
      ("Whole networks' convolutions before the inference work", "networks_before_cpu.md",
       "The same with the code from before dead-tap elimination, the small-map rules and "
       "shift's 1x1 matmuls, run in the same session as the one above."),
      ("Scaling out", "scaling_cpu.md",
       "`python benchmarks/scaling.py --steps 30`: step time of "
       "`examples/sharded_training.py` with explicit and with automatic mesh axes. The "
       "simulated devices share the machine's 2 cores: this measures what sharding "
       "costs, not a speed-up.")]),
    ("intel", "Intel (AVX-512): the earlier tables",
     "2 cores of an x86-64 Intel CPU with AVX-512; float32 matmul 454 GFLOP/s. "
     "jax 0.10.2.", "intel",
     "The machine this project used first: auto's CPU rules were first read off these "
     "kernel tables. auto's forward+backward was 1.22x PyTorch's time in geometric mean "
     "over the suite, 2.77x at worst (video_3d). These tables predate later rules "
     "(space-to-depth, stride phases, the output-side 3-d folds).",
     [("Layer suite", "bench_cpu.md", "`python -m jaxconv bench --repeats 15`."),
      ("Kernels", "kernels_cpu.md", "`python -m jaxconv bench --kernels --repeats 11`."),
      ("Per-example gradients", "per_example_cpu.md", "`python -m jaxconv bench --per-example`."),
      ("Winograd probe", "winograd_cpu.md",
       "The dense probe's Winograd F(2x2, 3x3) against lax: it lost on every layer here.")]),
    ("malloc", "glibc malloc thresholds (Zen 3)",
     "The Zen 3 machine (2 cores, glibc 2.36), both suites run one after the other on "
     "the same day.", "malloc",
     "A note more than a machine: the layer suite with raised glibc malloc thresholds "
     "(`MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296`) and with "
     "glibc's defaults. auto's forward+backward times do not improve with raised "
     "thresholds (its geometric mean against PyTorch: 1.10 with the defaults, 1.30 raised, "
     "as PyTorch gains on several layers); the [notes](../performance-notes.md) say why "
     "(\"Large buffers are paged in on every call\"), and what does help (`hugetlb=1`).",
     [("Raised thresholds", "bench_cpu.md", ""),
      ("glibc's defaults", "bench_cpu_default.md", "")]),
]


def _escape_brackets(line: str) -> str:
    """``[O, 9C] [9C, HW]`` in a table would read as a Markdown link; code spans keep theirs."""
    parts = line.split("`")
    return "`".join(p.replace("[", "\\[").replace("]", "\\]") if i % 2 == 0 else p
                    for i, p in enumerate(parts))


def _section(folder: pathlib.Path, out_dir: str, title: str, name: str, note: str) -> str:
    path = folder / name
    if not path.exists():
        return ""
    text = path.read_text().strip()
    lines = text.splitlines()
    header = ""
    if lines and not lines[0].startswith("|"):  # the benchmark's header line
        header = lines[0]
        text = "\n".join(lines[1:]).strip()
    text = "\n".join(_escape_brackets(line) for line in text.splitlines())
    parts = [f"## {title}", ""]
    if note:
        parts += [note, ""]
    if header:
        parts += [f"*{header}*", ""]
    source = f"benchmarks/results/{out_dir + '/' if out_dir else ''}{name}"
    parts += [text, "", f"Source: `{source}`.", ""]
    plot = path.with_suffix(".png")
    if plot.exists():
        target = f"performance/{out_dir or 'zen3'}/{plot.name}"
        with mkdocs_gen_files.open(target, "wb") as f:
            f.write(plot.read_bytes())
        parts[len(parts) - 2:len(parts) - 2] = [
            f"![forward+backward time relative to PyTorch]({out_dir or 'zen3'}/{plot.name})", ""]
    return "\n".join(parts)


for page, title, machine, sub, intro, sections in PAGES:
    folder = RESULTS / sub if sub else RESULTS
    body = [f"# {title}", "", f"**Machine:** {machine}", "", intro, "",
            "Generated from `benchmarks/results/" + (sub + "/" if sub else "")
            + "` when the site is built (`docs/gen_performance.py`). How the benchmark "
            "measures, and what the tables show, is on the [overview](../performance.md).", ""]
    body += [s for s in (_section(folder, sub, *sec) for sec in sections) if s]
    with mkdocs_gen_files.open(f"performance/{page}.md", "w") as f:
        f.write("\n".join(body))
