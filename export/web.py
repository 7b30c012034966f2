"""The decoder in a web page: `tfvae export` writes web/, a static page that runs a TFLite decoder
in the browser with LiteRT.js (the npm package @litertjs/core: WebAssembly with XNNPACK).

  web/index.html, web/tfvae.js       the page and its one JavaScript module (no build step)
  web/model/decoder_<variant>_b16.tflite
                                     the decoder with a fixed batch of 16 (the web runtime takes
                                     static shapes only) and float32 input and output (it has no
                                     int8 tensors; the int8 decoder quantizes inside): the smallest
                                     variant within the export's error target, and float32
  web/model/manifest.json            the decoders' errors, the prior, the principal directions of
                                     the training codes, a few training images with their codes
  web/litert/                        the LiteRT.js runtime, vendored from npm (about 19 MB; absent
                                     with --web-cdn, where the page loads it from jsDelivr)

The runtime's files come from the npm registry's tarballs, checked against their published
sha512 integrity and cached (TFVAE_CACHE, else $XDG_CACHE_HOME/tfvae, else ~/.cache/tfvae);
TFVAE_LITERTJS may name a folder holding the tarballs instead (`npm pack @litertjs/core@2.5.3
@litertjs/wasm-utils@2.5.3` writes them), and TFVAE_NPM_REGISTRY another registry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request

import numpy as np

from tfvae.errors import TfvaeError

LITERTJS_VERSION = "2.5.3"
# npm package -> (tarball name, the registry's sha512 integrity, the files the page needs)
PACKAGES = {
    "@litertjs/core": ("core", "PlGmbMOq9WitX7FO0jhbdJw9GthatsyuCQXjTt/wJZo0FLaw48q4tz8IwqgqCIkviYGr9OFDL1kCnN4nzWoyJQ==",
                       ("dist/index.js",
                        # the WebAssembly builds loadLiteRt picks without threads or JSPI: relaxed
                        # SIMD where the browser has it, the compatible one elsewhere (Safari)
                        "wasm/litert_wasm_internal.js", "wasm/litert_wasm_internal.wasm",
                        "wasm/litert_wasm_compat_internal.js", "wasm/litert_wasm_compat_internal.wasm")),
    "@litertjs/wasm-utils": ("wasm-utils", "4fJiw6tBQnIs+0jH/OQ16nYOiSl8/+zZnn5h2ul8aTKHi05sVqZW580Tmk78pC2kT39A9OYBVdFawteZ/sI1kQ==",
                             ("dist/index.js",)),
}
CDN = "https://cdn.jsdelivr.net/npm"
BATCH = 16          # the page's decoders: 16 codes per call (a 4x4 grid; fewer are padded)
DIRECTIONS = 8      # sliders: the principal directions of the training codes
SHIPPED_CODES = 8   # training images (and their codes) shipped with the page
PCA_IMAGES = 5000   # training images whose posterior means give the directions
CALIBRATION_CODES = 512  # training codes the page's integer decoders are calibrated and measured on
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")


def cache_dir() -> str:
    root = os.environ.get("TFVAE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tfvae")
    return os.path.join(root, f"litertjs-{LITERTJS_VERSION}")


def _tarball_name(package: str) -> str:
    """As `npm pack` names it: @litertjs/core 2.5.3 -> litertjs-core-2.5.3.tgz."""
    return f"{package.lstrip('@').replace('/', '-')}-{LITERTJS_VERSION}.tgz"


def _get_tarball(package: str) -> bytes:
    short, integrity, _ = PACKAGES[package]
    local = os.environ.get("TFVAE_LITERTJS")
    if local:
        path = os.path.join(local, _tarball_name(package))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise TfvaeError(f"TFVAE_LITERTJS={local}: cannot read {path} ({e.strerror or e}); put the npm tarballs "
                             f"there (npm pack @litertjs/core@{LITERTJS_VERSION} @litertjs/wasm-utils@"
                             f"{LITERTJS_VERSION}), or unset it to download them") from None
        where = path
    else:
        registry = os.environ.get("TFVAE_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
        url = f"{registry}/{package}/-/{short}-{LITERTJS_VERSION}.tgz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise TfvaeError(f"web/: cannot download the LiteRT.js runtime ({package} {LITERTJS_VERSION}) from {url} "
                             f"({reason}); export with --web-cdn (the page loads it from jsDelivr) or --no-web, or "
                             "set TFVAE_LITERTJS to a folder holding the npm tarballs") from None
        where = url
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != integrity:
        raise TfvaeError(f"{where} is not {package} {LITERTJS_VERSION} as npm publishes it (its sha512 differs); "
                         "remove it, or unset TFVAE_LITERTJS / TFVAE_NPM_REGISTRY to download it again")
    return data


def runtime_files(log=lambda s: None) -> str:
    """The folder holding the vendored runtime (core/..., wasm-utils/...), fetched once and cached."""
    target = cache_dir()
    if all(os.path.isfile(os.path.join(target, PACKAGES[p][0], f)) for p in PACKAGES for f in PACKAGES[p][2]):
        return target
    log(f"fetching the LiteRT.js runtime ({', '.join(PACKAGES)} {LITERTJS_VERSION}) into {target}")
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".litertjs-", dir=parent)
    except OSError as e:
        raise TfvaeError(f"cannot write the runtime's cache {parent}: {e.strerror or e}; set TFVAE_CACHE to a "
                         "writable folder") from None
    try:
        for package, (short, _, files) in PACKAGES.items():
            with tarfile.open(fileobj=io.BytesIO(_get_tarball(package)), mode="r:gz") as tar:
                for name in files:
                    member = tar.extractfile(f"package/{name}")
                    dest = os.path.join(staging, short, name)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with open(dest, "wb") as f:
                        shutil.copyfileobj(member, f)
        if os.path.exists(target):  # an incomplete earlier copy
            shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def import_map(cdn: bool) -> dict:
    """Where the page's module finds the runtime: the vendored copy, or jsDelivr."""
    if cdn:
        base = {p: f"{CDN}/{p}@{LITERTJS_VERSION}" for p in PACKAGES}
        return {"imports": {p: f"{base[p]}/dist/index.js" for p in PACKAGES}, "wasm": f"{base['@litertjs/core']}/wasm/"}
    return {"imports": {p: f"./litert/{PACKAGES[p][0]}/dist/index.js" for p in PACKAGES}, "wasm": "./litert/core/wasm/"}


# ------------------------------------------------------------------------------------ the codes
def _thumbnail(image: np.ndarray) -> str:
    from tfvae.images import encode_png, to_uint8

    pixels = to_uint8(image)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    return "data:image/png;base64," + base64.b64encode(encode_png(pixels)).decode()


def training_codes(trained, seed: int = 0):
    """(shipped codes, principal directions, a note) from the run's training images: SHIPPED_CODES
    images with their codes (posterior means) and labels, and the principal directions of
    PCA_IMAGES codes (mean, unit axes, standard deviation along each, variance explained; under
    "calibration", (codes, labels or None) of CALIBRATION_CODES of them). Without readable
    training images: (None, None, a note saying why)."""
    model = trained.model
    d = model.config.latent_dim
    try:
        splits = trained.splits()
        images, labels = splits.train, splits.train_labels
    except Exception as e:  # the source is on another machine, or offline: the page still works
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return None, None, f"the training images are not readable here ({first[:200]})"
    from tfvae.data import as_float

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), size=min(PCA_IMAGES, len(images)), replace=False)
    x = as_float(images[pick])
    y = None if labels is None or not model.conditional else np.asarray(labels[pick], np.int32)
    codes = np.concatenate([(model if y is None else model.given(y[i:i + 500])).encode(x[i:i + 500]).numpy()
                            for i in range(0, len(x), 500)])
    mean = codes.mean(axis=0)
    _, s, vt = np.linalg.svd(codes - mean, full_matrices=False)
    k = min(DIRECTIONS, d)
    std = s[:k] / np.sqrt(max(len(codes) - 1, 1))
    directions = {"mean": mean.tolist(), "axes": vt[:k].tolist(), "std": std.tolist(),
                  "explained": (s[:k] ** 2 / max((s ** 2).sum(), 1e-12)).tolist(), "from": f"{len(codes)} training codes",
                  "dim_std": codes.std(axis=0).tolist()}
    # the shipped images: one per class in turn where there are labels, else the first ones
    order = np.arange(len(pick))
    if labels is not None:
        lab = np.asarray(labels[pick])
        firsts = [int(np.flatnonzero(lab == c)[0]) for c in np.unique(lab)]
        order = np.array(firsts + [i for i in order if i not in set(firsts)])
    chosen = order[:SHIPPED_CODES]
    shipped = [{"z": codes[i].tolist(), "image": _thumbnail(x[i]),
                "label": None if y is None else int(y[i]),
                "class": None if labels is None else int(labels[pick][i])} for i in chosen]
    # the codes the page starts from are training codes: the decoders are calibrated and measured on
    # CALIBRATION_CODES of them too (a VAE's codes may lie beyond the prior draws' range)
    order = np.concatenate([chosen, np.setdiff1d(np.arange(len(codes)), chosen)])[:CALIBRATION_CODES]
    directions["calibration"] = (codes[order], None if y is None else y[order])
    return shipped, directions, None


def prior_codes(model, seed: int = 0):
    """Stand-ins where the training images are unreadable: prior draws, and the prior's axes."""
    d = model.config.latent_dim
    labels = model.reference_labels(SHIPPED_CODES, seed)
    z = model.reference_codes(SHIPPED_CODES, seed, labels)
    shipped = [{"z": z[i].tolist(), "image": None, "label": None if labels is None else int(labels[i]), "class": None}
               for i in range(len(z))]
    k = min(DIRECTIONS, d)
    directions = {"mean": [0.0] * d, "axes": np.eye(d)[:k].tolist(), "std": [1.0] * k, "explained": None,
                  "from": "the prior's axes", "dim_std": [1.0] * d}
    return shipped, directions


# ------------------------------------------------------------------------------------ the page
def web_decoders(model, report_variants: dict, target_ok, seed: int, reference, z, labels, log, extra=None):
    """{variant: (bytes, measured)} of the page's decoders, fixed batch BATCH and float32 in and
    out: the smallest variant (by the export's measurement) whose fixed-batch program meets the
    error target, and float32 beside it; and the chosen variant's name. `extra`: (codes, labels or
    None) of training images, calibrated and measured on beside the prior's codes `z`."""
    from tfvae.export import tflite

    if extra is not None:
        view = model if extra[1] is None else model.given(extra[1])
        reference = np.concatenate([view.decode_mean(extra[0]).numpy(), reference])
        z = np.concatenate([extra[0], z]).astype(np.float32)
        labels = None if labels is None else np.concatenate([extra[1], labels]).astype(np.int32)

    by_size = sorted((v for v in report_variants if target_ok(report_variants[v])),
                     key=lambda v: report_variants[v]["bytes"])
    candidates = by_size + [v for v in ("none",) if v not in by_size]
    n = len(z) - len(z) % BATCH

    def program(variant):
        log(f"web/: converting decoder_{variant} with a fixed batch of {BATCH}")
        content = tflite.convert_decoder(model, [variant], seed=seed, batch=BATCH, float_io=True, extra=extra)[variant]
        lite = tflite.LiteDecoder(model_content=content)
        got = np.concatenate([lite(z[i:i + BATCH], None if labels is None else labels[i:i + BATCH])
                              for i in range(0, n, BATCH)])
        err = np.abs(got - reference[:n])
        return content, {"bytes": len(content), "max_abs_error": float(err.max()), "mean_abs_error": float(err.mean()),
                         "p999_abs_error": float(np.quantile(err, 0.999)),
                         "us_per_batch": tflite.latency_per_sample(lite, z, BATCH, labels=labels) * 1e6 * BATCH}

    out, chosen = {}, None
    for variant in candidates:
        out[variant] = program(variant)
        if target_ok(out[variant][1]):
            chosen = variant
            break
    if "none" not in out:  # float32 beside it, the reference the page can switch to
        out["none"] = program("none")
    return out, chosen


def write_web(trained, web_dir: str, *, report: dict, cdn: bool, runtime, target_ok, seed: int,
              reference, z, labels, log=lambda s: None) -> dict:
    """Writes web/ into `web_dir` (a staging folder); returns its part of the report."""
    model = trained.model
    os.makedirs(os.path.join(web_dir, "model"))
    shipped, directions, note = training_codes(trained, seed)
    if shipped is None:
        shipped, directions = prior_codes(model, seed)
        log(f"web/: {note}: the page's codes are prior draws and its sliders follow the prior's axes")
    extra = directions.pop("calibration", None)
    decoders, chosen = web_decoders(model, report["tflite"], target_ok, seed, reference, z, labels, log, extra)
    variants = []
    for variant, (content, measured) in decoders.items():
        name = f"decoder_{variant}_b{BATCH}.tflite"
        with open(os.path.join(web_dir, "model", name), "wb") as f:
            f.write(content)
        variants.append({"variant": variant, "file": f"model/{name}", **measured})
    if model.variational:
        prior = {k: np.asarray(v).tolist() for k, v in model.prior.mixture().items()}
        prior["description"] = model.prior.description
    else:  # an autoencoder has no prior: the page draws from a diagonal Gaussian fitted to the codes
        prior = {"weights": [1.0], "loc": [directions["mean"]], "scale": [directions["dim_std"]],
                 "description": ("a diagonal Gaussian fitted to " + directions["from"]) if note is None
                 else "N(0, I) (an autoencoder has no prior)", "fitted": True}
    # the pad (2-d codes) spans the prior's +- 3 standard deviations, where the decoders were calibrated
    # and measured; an autoencoder's, its codes' mean +- 3 standard deviations
    loc, scale = np.asarray(prior["loc"]), np.asarray(prior["scale"])
    pad = np.stack([(loc - 3 * np.maximum(scale, 0.05)).min(axis=0), (loc + 3 * np.maximum(scale, 0.05)).max(axis=0)], 1)
    label_info = report.get("labels")
    mapping = import_map(cdn)
    measured_on = f"{len(z)} prior codes" + (f" and {len(extra[0])} training codes" if extra is not None else "")
    manifest = {
        "name": report["saved_model"]["name"], "version": report["saved_model"]["version"],
        "model": report["model"], "image_shape": report["image_shape"], "latent_dim": report["latent_dim"],
        "batch": BATCH, "decoders": variants, "chosen": chosen or "none", "accuracy_target": report["accuracy_target"],
        "measured_on": measured_on,
        "prior": prior, "pad": pad.tolist(), "directions": directions, "codes": shipped, "codes_note": note,
        "labels": label_info, "runtime": {"package": "@litertjs/core", "version": LITERTJS_VERSION,
                                          "wasm": mapping["wasm"], "cdn": cdn},
    }
    with open(os.path.join(web_dir, "model", "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as f:
        page = f.read()
    page = page.replace("__IMPORT_MAP__", json.dumps({"imports": mapping["imports"]}))
    page = page.replace("__TITLE__", f"{report['saved_model']['name']}: {report['model']} decoder")
    with open(os.path.join(web_dir, "index.html"), "w", encoding="utf-8") as f:
        f.write(page)
    shutil.copy2(os.path.join(STATIC, "tfvae.js"), os.path.join(web_dir, "tfvae.js"))
    runtime_bytes = 0
    if not cdn:
        for package, (short, integrity, files) in PACKAGES.items():
            for name in files:
                dest = os.path.join(web_dir, "litert", short, name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy2(os.path.join(runtime, short, name), dest)
                runtime_bytes += os.path.getsize(dest)
        with open(os.path.join(web_dir, "litert", "NOTICE.txt"), "w") as f:
            f.write(f"LiteRT.js runtime files, unmodified, from the npm packages {', '.join(PACKAGES)} "
                    f"{LITERTJS_VERSION} (Apache License 2.0, https://github.com/google-ai-edge/LiteRT).\n"
                    + "".join(f"{p}: sha512-{PACKAGES[p][1]}\n" for p in PACKAGES))
    page_bytes = sum(os.path.getsize(os.path.join(root, f)) for root, _, fs in os.walk(web_dir) for f in fs)
    return {"index": "web/index.html", "decoders": {v["variant"]: {k: v[k] for k in v if k != "variant"}
                                                    for v in variants},
            "chosen": chosen or "none", "batch": BATCH, "runtime": "cdn" if cdn else "vendored",
            "runtime_bytes": runtime_bytes, "bytes": page_bytes, "codes_from": directions["from"],
            "measured_on": measured_on}
