"""The export's web page in headless Chromium: its size, load time and latency per batch.

    python bench/web_latency.py EXPORT_DIR [--repeats 50] [--screenshot page.png] [--width 1100]

Serves EXPORT_DIR/web/ with `python -m http.server`, opens it in headless Chromium (Debian's
chromium and chromium-driver, through Selenium), and measures: the page's size on disk (with and
without the vendored runtime), the time from navigation to a ready page (runtime loaded, decoders
compiled, the first grid, explorer and interpolation drawn), and for each decoder the median time
of one batch through LiteRT.js (`repeats` calls after a warm-up). Prints a Markdown table;
`--screenshot` saves the page as a PNG (the README's Deploy section shows one).
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))


def folder_bytes(path, skip=None):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs
               if not (skip and os.path.join(r, f).startswith(skip)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--screenshot", default=None)
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1300)
    parser.add_argument("--label", default=None, help="a class to select first (a conditional model)")
    args = parser.parse_args()
    from test_web import Page  # the suite's driver: a static server and headless Chromium

    web = os.path.join(args.export_dir, "web")
    if not os.path.isfile(os.path.join(web, "index.html")):
        sys.exit(f"error: {web}/index.html does not exist; export with tfvae export (without --no-web)")
    page = Page(web, width=args.width, height=args.height)
    try:
        page.call("return true;")
        load_ms = page.call("return t.loadMs;")
        manifest = page.call("return t.manifest;")
        rows = []
        for d in manifest["decoders"]:
            times = page.call(
                "await t.setVariant(args[0]); const codes = t.drawPrior(t.manifest.batch, 1, null);"
                "const labels = t.manifest.labels ? codes.map((_, i) => t.manifest.labels.classes[i % "
                "t.manifest.labels.classes.length]) : null; await t.decode(codes, labels); const ms = [];"
                "for (let i = 0; i < args[1]; i++) { ms.push((await t.decode(codes, labels)).ms); } return ms;",
                d["variant"], args.repeats)
            times.sort()
            rows.append((d["variant"], d["bytes"], d.get("max_abs_error"), times[len(times) // 2], times[0]))
        page.call("await t.setVariant(t.manifest.chosen); return true;")
        if args.label is not None:
            page.call("const s = document.getElementById('label'); s.value = args[0];"
                      "s.dispatchEvent(new Event('change')); await new Promise((r) => setTimeout(r, 500)); return true;",
                      str(args.label))
        if args.screenshot:
            page.driver.save_screenshot(args.screenshot)
        version = page.driver.capabilities.get("browserVersion")
    finally:
        page.close()
    total = folder_bytes(web)
    runtime = folder_bytes(os.path.join(web, "litert")) if os.path.isdir(os.path.join(web, "litert")) else 0
    print(f"page {web}: {total / 1e6:.2f} MB ({(total - runtime) / 1e3:.0f} KB without the runtime's "
          f"{runtime / 1e6:.2f} MB); ready in {load_ms:.0f} ms; headless Chromium {version}, "
          f"LiteRT.js {manifest['runtime']['version']} (WebAssembly)")
    print(f"\n| decoder (batch {manifest['batch']}) | size | max error | ms per batch (median) | best |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for variant, size, err, median, best in rows:
        mark = " (chosen)" if variant == manifest["chosen"] else ""
        print(f"| `{variant}`{mark} | {size / 1e3:.0f} KB | {err:.1e} | {median:.2f} | {best:.2f} |")
    print(json.dumps({"load_ms": load_ms, "bytes": total, "runtime_bytes": runtime,
                      "decoders": {r[0]: {"median_ms": r[3], "best_ms": r[4]} for r in rows}}))


if __name__ == "__main__":
    main()
