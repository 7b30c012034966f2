"""`tfvae export`: a trained run -> a folder ready to deploy.

  EXPORT_DIR/saved_model/<name>/<version>/   the SavedModel, laid out as TF Serving expects
  EXPORT_DIR/tflite/decoder_<variant>.tflite  int8, int16, dynamic, float16, none (float32)
  EXPORT_DIR/tflite/compare.png               the same z through the float decoder and each variant
  EXPORT_DIR/tflite/sampler.tflite            n -> images and their z, z drawn on the device (VAEs)
  EXPORT_DIR/edge/tfvae_edge.py               the numpy + LiteRT runner, with requirements.txt
  EXPORT_DIR/web/index.html                   the decoder in a web page (LiteRT.js; see web.py)
  EXPORT_DIR/requests/<signature>.json        example REST requests
  EXPORT_DIR/report.json, README.md           sizes, errors, latencies; how to serve and run
  EXPORT_DIR/history/<version>/               an earlier version's tflite/, report.json, README.md

One export folder holds one model: its versions are kept side by side under saved_model/<name>/
as TF Serving expects, the newest version's TFLite files, report and README at the top, and each
earlier version's moved to history/<version>/ when a newer one is exported. A model with another
interface (family, image size, code size, signatures) or another name is refused.

Everything is built in a hidden staging folder inside EXPORT_DIR and moved into place by renames
once complete, the SavedModel version last: a failed export leaves no partial version directory,
and TF Serving, which watches the model base path, never sees half a version. (The files beside
the version, tflite/ and the rest, are each replaced by a rename too.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time

import numpy as np

from tfvae.errors import TfvaeError
from tfvae.export import tflite
from tfvae.export.savedmodel import signature_names, write_savedmodel
from tfvae.runtime import captured_output

EDGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "edge")


def model_name(run_dir: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", os.path.basename(os.path.abspath(run_dir))).strip("_-")
    return name or "tfvae"


def versions(base: str) -> list:
    if not os.path.isdir(base):
        return []
    return sorted(int(d) for d in os.listdir(base) if d.isdigit() and os.path.isdir(os.path.join(base, d)))


def _interface(report: dict) -> dict:
    """What clients of an export depend on: the same for every version of one model."""
    return {"model": report.get("model"), "image_shape": list(report.get("image_shape") or []),
            "latent_dim": report.get("latent_dim"),
            "signatures": list((report.get("saved_model") or {}).get("signatures") or []),
            "label_classes": (report.get("labels") or {}).get("label_classes", 0)}


def interface_of(trained) -> dict:
    """The interface (see `_interface`) of a trained run's export."""
    model = trained.model
    return {"model": trained.config.model, "image_shape": list(model.image_shape),
            "latent_dim": model.config.latent_dim, "signatures": signature_names(model),
            "label_classes": model.config.label_classes if model.conditional else 0}


def _article(word: str) -> str:
    """'an' before a vowel sound (an ae, an hvae, an sae: spelt out), 'a' otherwise (a vae, a cae)."""
    return "an" if word[:1].lower() in "aeiohs" else "a"


def _describe(interface: dict) -> str:
    shape = "x".join(map(str, interface["image_shape"]))
    given = f", conditioned on {interface['label_classes']} classes" if interface.get("label_classes") else ""
    return (f"{_article(interface['model'])} {interface['model']} over {shape} images with a "
            f"{interface['latent_dim']}-dimensional code{given}")


def held_model(out_dir: str):
    """(name, report) of the model an export folder holds, from its report.json; (name, None)
    for a folder with a SavedModel but no report; None for a new or empty folder."""
    names = sorted(os.listdir(os.path.join(out_dir, "saved_model"))) if os.path.isdir(
        os.path.join(out_dir, "saved_model")) else []
    path = os.path.join(out_dir, "report.json")
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
            return report["saved_model"]["name"], report
        except (OSError, ValueError, KeyError, TypeError):
            raise TfvaeError(f"{path} is unreadable or damaged, so the model {out_dir} holds is unknown; "
                             "export into another folder (-o), or remove this one") from None
    return (names[0], None) if names else None


def check_same_model(out_dir: str, name, interface: dict, run_dir: str):
    """(the model name to export under, the report of the version the folder holds or None): a
    folder holds one model, so a second export into it must be a new version of the same model
    (the same interface and name)."""
    held = held_model(out_dir)
    if held is None:
        return name or model_name(run_dir), None
    held_name, report = held
    if report is None:
        raise TfvaeError(f"{out_dir} holds a SavedModel ({held_name}) without its report.json, so tfvae cannot "
                         "tell which model it is; export into another folder (-o), or remove this one")
    if name is not None and name != held_name:
        raise TfvaeError(f"{out_dir} holds the model {held_name!r}; one export folder holds one model: export "
                         f"{name!r} into another folder (-o), or drop --name to add a version of {held_name!r}")
    held_interface = _interface(report)
    if held_interface != interface:
        raise TfvaeError(f"{out_dir} holds {held_name!r}, {_describe(held_interface)} (from {report.get('run_dir')}); "
                         f"{run_dir} is {_describe(interface)}: one export folder holds one model, so export it "
                         "into another folder (-o), or remove this one")
    return held_name, report


def _replace(src: str, dst: str, trash: str) -> None:
    """Moves src to dst; an existing dst is moved into `trash` first (renames only)."""
    if os.path.exists(dst):
        os.replace(dst, os.path.join(trash, f"{len(os.listdir(trash))}-{os.path.basename(dst)}"))
    os.replace(src, dst)


def export_run(trained, out_dir: str, *, name=None, version=None, force=False, quantize=tflite.VARIANTS,
               n_eval: int = 1000, seed: int = 0, web: str = "vendor", log=lambda s: None) -> dict:
    """Exports a `TrainedModel`; returns the report (also written to report.json). `web`:
    "vendor" (web/ with the LiteRT.js runtime copied in), "cdn" (web/ loading it from jsDelivr)
    or None (no web/)."""
    from tfvae.export import web as webpage

    model = trained.model
    runtime = webpage.runtime_files(log) if web == "vendor" else None  # before any work: a clear, early error
    interface = interface_of(trained)
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise TfvaeError(f"--name {name!r}: use letters, digits, '_' and '-' only (it is a URL part in TF Serving)")
    name, previous = check_same_model(out_dir, name, interface, trained.run_dir)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise TfvaeError(f"--name {name!r}: use letters, digits, '_' and '-' only (it is a URL part in TF Serving)")
    base = os.path.join(out_dir, "saved_model", name)
    existing = versions(base)
    version = int(version) if version is not None else (existing[-1] + 1 if existing else 1)
    if version < 1:
        raise TfvaeError(f"--version must be a positive integer, got {version}")
    final_version_dir = os.path.join(base, str(version))
    if os.path.exists(final_version_dir) and not force:
        raise TfvaeError(f"{final_version_dir} already exists; pass --force to replace it, or --version N "
                         f"(next free: {existing[-1] + 1 if existing else 1})")
    try:
        os.makedirs(out_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".export-", dir=out_dir)
    except OSError as e:
        raise TfvaeError(f"cannot write to {out_dir}: {e.strerror or e}; choose a writable -o") from None
    t_start = time.perf_counter()
    try:
        sm_dir = os.path.join(staging, "saved_model")
        log("writing the SavedModel")
        write_savedmodel(model, sm_dir)
        tfl_dir = os.path.join(staging, "tflite")
        os.makedirs(tfl_dir)
        log(f"converting the decoder to TFLite ({', '.join(quantize)})")
        with captured_output():  # the converter's own notes
            converted = tflite.convert_decoder(model, quantize, seed=seed)
        labels = model.reference_labels(n_eval, seed + 1)  # a conditional model's, a class per code
        z = model.reference_codes(n_eval, seed + 1, labels)
        reference = (model if labels is None else model.given(labels)).decode_mean(z).numpy()
        variants = {}
        for variant, content in converted.items():
            path = os.path.join(tfl_dir, f"decoder_{variant}.tflite")
            with open(path, "wb") as f:
                f.write(content)
            log(f"measuring decoder_{variant}.tflite")
            with captured_output():
                measured = tflite.measure(content, reference, z, labels)
            variants[variant] = {"file": f"tflite/decoder_{variant}.tflite", **measured,
                                 "tensors": tflite.tensor_details(content)}
        recommended = recommended_variant(variants)
        if converted:
            rows = [reference[:COMPARE_SAMPLES]]
            for variant, content in converted.items():
                rows.append(tflite.LiteDecoder(model_content=content)(
                    z[:COMPARE_SAMPLES], None if labels is None else labels[:COMPARE_SAMPLES]))
            from tfvae.images import rows_grid, write_png

            write_png(os.path.join(tfl_dir, "compare.png"), rows_grid(rows))
        sampler = None
        if model.variational:
            mixture = model.prior.mixture()
            with open(os.path.join(tfl_dir, "prior.json"), "w") as f:
                json.dump({k: np.asarray(v).tolist() for k, v in mixture.items()}, f)
            log("converting the sampler")
            with captured_output():
                content = tflite.convert_sampler(model)
            with open(os.path.join(tfl_dir, "sampler.tflite"), "wb") as f:
                f.write(content)
            sampler = {"file": "tflite/sampler.tflite", "bytes": len(content), "tensors": tflite.tensor_details(content)}
        label_info = None
        if model.conditional:  # the classes a conditional decoder takes, for the edge runner and apps
            names = trained.class_names
            label_info = {"label_classes": model.config.label_classes, "classes": trained.classes,
                          "names": [str(n) for n in names] if names else None}
            with open(os.path.join(tfl_dir, "labels.json"), "w") as f:
                json.dump(label_info, f)
        edge = os.path.join(staging, "edge")
        os.makedirs(edge)
        for f in ("tfvae_edge.py", "requirements.txt"):
            shutil.copy2(os.path.join(EDGE_DIR, f), os.path.join(edge, f))
        requests = os.path.join(staging, "requests")
        os.makedirs(requests)
        for sig, body in example_requests(model).items():
            with open(os.path.join(requests, f"{sig}.json"), "w") as f:
                json.dump(body, f)
        report = {
            "run_dir": trained.run_dir,
            "model": trained.config.model,
            "image_shape": list(model.image_shape),
            "latent_dim": model.config.latent_dim,
            "saved_model": {"name": name, "version": version, "path": f"saved_model/{name}/{version}",
                            "signatures": signature_names(model)},
            "tflite": variants,
            "recommended_decoder": recommended,
            "accuracy_target": ACCURACY_TARGET,
            "compare_png": {"file": "tflite/compare.png", "rows": ["float (Keras)", *converted]} if converted else None,
            "sampler": sampler,
            "labels": label_info,
            "evaluated_on": f"{n_eval} " + (f"prior samples z ~ {model.prior.description}" if model.variational else
                                            "codes z ~ N(0, I)")
                            + (", each with a label (the classes in turn)" if label_info else "")
                            + f", seed {seed + 1}; latency through the LiteRT interpreter on this machine",
            "seconds": round(time.perf_counter() - t_start, 1),
        }
        if web:
            report["web"] = webpage.write_web(trained, os.path.join(staging, "web"), report=report, cdn=web == "cdn",
                                              runtime=runtime, target_ok=meets_target, seed=seed,
                                              reference=reference, z=z, labels=labels, log=log)
        with open(os.path.join(staging, "report.json"), "w") as f:
            json.dump(report, f, indent=2)
        with open(os.path.join(staging, "README.md"), "w") as f:
            f.write(readme(report, model))
        # Commit, by renames only: the companions first, the SavedModel version last, so a version
        # that TF Serving can see is always complete.
        trash = tempfile.mkdtemp(prefix=".old-", dir=out_dir)
        try:
            os.makedirs(base, exist_ok=True)
            old_version = previous["saved_model"]["version"] if previous else None
            if old_version is not None and old_version != version:  # keep the earlier version's files
                kept = os.path.join(out_dir, "history", str(old_version))
                if os.path.exists(kept):  # left by an earlier export of that version number
                    os.replace(kept, os.path.join(trash, "history-" + str(old_version)))
                os.makedirs(kept)
                for part in ("tflite", "report.json", "README.md"):
                    if os.path.exists(os.path.join(out_dir, part)):
                        os.replace(os.path.join(out_dir, part), os.path.join(kept, part))
                log(f"version {old_version}'s tflite/, report.json and README.md moved to "
                    f"{os.path.join(out_dir, 'history', str(old_version))}/")
            if not web and os.path.exists(os.path.join(out_dir, "web")):  # an earlier version's page
                os.replace(os.path.join(out_dir, "web"), os.path.join(trash, "web"))
            for part in ("tflite", "edge", "requests", "web", "report.json", "README.md"):
                if not os.path.exists(os.path.join(staging, part)):
                    continue
                _replace(os.path.join(staging, part), os.path.join(out_dir, part), trash)
            if force:
                _replace(sm_dir, final_version_dir, trash)
            else:
                try:
                    os.rename(sm_dir, final_version_dir)  # fails if the version appeared meanwhile
                except OSError:
                    raise TfvaeError(f"{final_version_dir} appeared during the export (another export?); "
                                     "export again, or pass --version N or --force") from None
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def example_requests(model) -> dict:
    """REST bodies for TF Serving's :predict, one per signature (columnar "inputs" format)."""
    rng = np.random.default_rng(0)
    image = np.round(rng.random((1, *model.image_shape)), 2).tolist()
    z = np.round(rng.standard_normal((2, model.config.latent_dim)), 3).tolist()
    given = {}
    if model.conditional:  # an int label per row
        classes = [int(c) for c in model.label_rows(1)]
        given = {"label": classes[:1]}
    out = {
        "serving_default": {"signature_name": "serving_default", "inputs": {"images": image, **given}},
        "encode": {"signature_name": "encode", "inputs": {"images": image, **given}},
        "decode": {"signature_name": "decode", "inputs": {"z": z, **({"label": [classes[0], classes[-1]]}
                                                                     if given else {})}},
    }
    if "decode_levels" in signature_names(model):
        out["decode_levels"] = {"signature_name": "decode_levels", "inputs": {"z1": z, "z2": z}}
    if "sample" in signature_names(model):
        out["sample"] = {"signature_name": "sample",
                         "inputs": {"label": (classes * 4)[:4]} if given else {"n": 4}}
    if "score" in signature_names(model):
        out["score"] = {"signature_name": "score", "inputs": {"images": image, **given}}
    return out


COMPARE_SAMPLES = 12  # columns of compare.png
# a quantized decoder that looks like the float one: |error| per pixel against the float decoder
ACCURACY_TARGET = {"mean_abs_error": 0.005, "p999_abs_error": 0.05, "max_abs_error": 0.06}


def meets_target(measured: dict) -> bool:
    return all(measured[k] <= v for k, v in ACCURACY_TARGET.items())


def recommended_variant(variants: dict):
    """The smallest decoder that meets ACCURACY_TARGET (float32 `none` meets it by construction);
    the edge runner uses it when no --model is given. None when no variant was written."""
    ok = [v for v, r in variants.items() if meets_target(r)]
    if not ok:
        return None
    return min(ok, key=lambda v: variants[v]["bytes"])


def format_table(report: dict) -> str:
    lines = [f"{'variant':<10} {'bytes':>10} {'max err':>9} {'p99.9 err':>9} {'mean err':>9} {'us/sample b1':>13} "
             f"{'us/sample b64':>14}"]
    for variant, r in report["tflite"].items():
        mark = "  <- recommended" if variant == report.get("recommended_decoder") else ""
        lines.append(f"{variant:<10} {r['bytes']:>10,} {r['max_abs_error']:>9.2e} {r['p999_abs_error']:>9.2e} "
                     f"{r['mean_abs_error']:>9.2e} {r['us_per_sample_batch1']:>13.1f} "
                     f"{r['us_per_sample_batch64']:>14.2f}{mark}")
    return "\n".join(lines)


def recommended_text(report: dict) -> str:
    t = report["accuracy_target"]
    target = (f"mean <= {t['mean_abs_error']}, 99.9th percentile <= {t['p999_abs_error']} and max <= "
              f"{t['max_abs_error']}")
    rec = report.get("recommended_decoder")
    pic = ("`tflite/compare.png` shows the same z decoded by the float decoder (top row) and by each variant "
           f"below it, in this order: {', '.join(report['compare_png']['rows'][1:])}.") if report.get("compare_png") else ""
    if rec is None:
        return pic
    return (f"The recommended decoder, the smallest whose error stays within {target}, is "
            f"`decoder_{rec}.tflite`; `edge/tfvae_edge.py` uses it when no `--model` is given. {pic}")


def readme(report: dict, model) -> str:
    name, version = report["saved_model"]["name"], report["saved_model"]["version"]
    sigs = report["saved_model"]["signatures"]
    h, w, c = report["image_shape"]
    d = report["latent_dim"]
    int8 = report["tflite"].get("int8")
    curl = "\n".join(
        f"curl -s -d @requests/{s}.json http://localhost:8501/v1/models/{name}:predict" for s in sigs)
    signature_rows = model.signature_descriptions()
    table = "\n".join(f"| `{s}` | {signature_rows[s]} |" for s in sigs)
    quant = ""
    if int8:
        ti, to = int8["tensors"]["inputs"][0], int8["tensors"]["outputs"][0]
        quant = (f"`decoder_int8.tflite` takes int8 `z` and returns int8 pixels:\n"
                 f"- input  `{ti['name']}` shape {ti['shape']}: q = round(z / {ti['quantization']['scale']:.6g}) "
                 f"+ {ti['quantization']['zero_point']}, clipped to [-128, 127]\n"
                 f"- output `{to['name']}` shape {to['shape']}: pixel = (q - ({to['quantization']['zero_point']})) "
                 f"* {to['quantization']['scale']:.6g}\n"
                 "The other decoders take and return float32 (`z` in, pixel means out); all have the signature "
                 "`serving_default` with input `z` and output `images`.")
    ae_note = "" if model.variational else (
        "\nThis is an autoencoder (`--model " + report["model"] + "`): it has no prior, so there is no `sample` or "
        "`score` signature and no sampler.tflite; decode codes from `encode` (`tfvae_edge.py --z codes.npy`).\n")
    return f"""# {name}: exported from {report['run_dir']}

{_article(report['model']).capitalize()} `{report['model']}` over {h}x{w}x{c} images with a {d}-dimensional code.
{ae_note}
## Serve with TensorFlow Serving

The SavedModel is `saved_model/{name}/{version}/`; TF Serving's model base path is
`saved_model/{name}` (it serves the highest version and picks up new ones). This folder holds
this one model: exporting a newer run of it adds a version beside this one and moves this
version's `tflite/`, `report.json` and this README to `history/{version}/`.

```
docker run -p 8501:8501 \\
  --mount type=bind,source="$PWD/saved_model/{name}",target=/models/{name} \\
  -e MODEL_NAME={name} -t tensorflow/serving
```

Signatures (inputs | outputs):

| signature | |
| --- | --- |
{table}

REST requests (bodies in `requests/`, columnar `"inputs"` format):

```
{curl}
```

Without a server, `saved_model_cli` (installed with TensorFlow) shows and runs them:

```
saved_model_cli show --dir saved_model/{name}/{version} --all
saved_model_cli run --dir saved_model/{name}/{version} --tag_set serve --signature_def decode --input_exprs 'z=[[{", ".join(["0.0"] * d)}]]'
""" + (f"saved_model_cli run --dir saved_model/{name}/{version} --tag_set serve --signature_def sample --input_exprs 'n=2'\n"
       if model.variational else "") + f"""```

In Python, with TensorFlow alone: `m = tf.saved_model.load("saved_model/{name}/{version}");
m.signatures["decode"](z=tf.zeros([1, {d}]))["images"]`.

## Sample on a device

`tflite/` holds the decoder in {len(report['tflite'])} precision(s) (measured against the Keras decoder on
{report['evaluated_on']}; absolute error per pixel, pixels in [0, 1]):

```
{format_table(report)}
```

{recommended_text(report)}

### Raspberry Pi (64-bit Raspberry Pi OS) or any Linux

Copy `edge/` and a decoder to the device, then:

```
pip install numpy ai-edge-litert      # the only two packages it needs
python edge/tfvae_edge.py -n 16 --seed 5 -o samples.png      # the recommended decoder
python edge/tfvae_edge.py --model tflite/decoder_int8.tflite -n 16 --seed 5 -o samples.png
```

The same seed gives the same images; `-o out.npy` writes the pixel means as an array;
`--z codes.npy` decodes given codes instead of prior samples.

### Android (LiteRT)

Load a decoder with the LiteRT `Interpreter`, draw `z` in the app (java.util.Random.nextGaussian,
seeded for reproducible samples), and run the `serving_default` signature (input `z`, output
`images`). {quant}

`tflite/sampler.tflite` (VAEs) takes a count `n` (int32 scalar) and returns `n` images (output `images`)
and the codes they were decoded from (output `z`), drawing
z inside the model with TFLite's builtin random op; it cannot take a seed (seeded random ops need
the Flex delegate), so draw z in the app when samples must be reproducible.
""" + web_readme(report)


def web_readme(report: dict) -> str:
    """The export README's section on web/, the decoder in a web page."""
    w = report.get("web")
    if not w:
        return ""
    chosen = w["decoders"][w["chosen"]]
    others = ", ".join(f"`{v}`{' (float32)' if v == 'none' else ''}, {r['bytes'] / 1e3:.0f} KB"
                       for v, r in w["decoders"].items() if v != w["chosen"]) or "nothing else"
    runtime = (f"The LiteRT.js runtime ({w['runtime_bytes'] / 1e6:.1f} MB: `@litertjs/core` 2.5.3's WebAssembly for "
               "browsers with relaxed SIMD and its build for the others, such as Safari) is copied into `web/litert/` "
               "from the npm package, so the page works offline. `tfvae export --web-cdn` leaves it out and loads it "
               "from jsDelivr instead (the page then needs a network)." if w["runtime"] == "vendored" else
               "The page loads the LiteRT.js runtime (`@litertjs/core` 2.5.3) from the jsDelivr CDN (exported with "
               "`--web-cdn`): it needs a network. Export without `--web-cdn` to copy the runtime (about 19 MB) into "
               "`web/litert/` and work offline.")
    return f"""
## In a web page: every phone samples, no app to build

`web/` ({w['bytes'] / 1e6:.1f} MB) is a static page that runs the decoder in the browser with LiteRT.js (WebAssembly,
XNNPACK, on the CPU): prior samples in a grid (a seed makes them reproducible; a click draws the
next seed), a pad where the pointer is z (2-d codes) or sliders along the principal directions of
the training codes (more dimensions), starting from a training image's code, and the line between
two training images' codes. It shows the latency per batch and the decoder it runs:
`decoder_{w['chosen']}` ({chosen['bytes'] / 1e3:.0f} KB, max error {chosen['max_abs_error']:.1e} per pixel against the Keras
decoder), the smallest within the accuracy target above, with a fixed batch of {w['batch']} (the web runtime
takes static shapes only) and float32 in and out; the page can switch to {others}. Their errors
were measured on {w['measured_on']}.

{runtime}

Serve the folder (browsers load no module from a `file:` URL):

```
cd web && python -m http.server 8000          # then open http://localhost:8000/
```

On a phone:
- on the same network as this computer: `python -m http.server 8000 --bind 0.0.0.0` in `web/`,
  then open `http://<this computer's address>:8000/` on the phone (`hostname -I` prints the address
  on Linux, `ipconfig getifaddr en0` on a Mac);
- anywhere: copy `web/` to any static host (GitHub Pages, Netlify, an S3 bucket, a web server's
  folder) and open its address. Nothing runs on the server: it only serves files.
"""
