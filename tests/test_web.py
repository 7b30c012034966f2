"""The export's web page (web/): LiteRT.js runs the decoder in a real headless Chromium, driven by
Selenium through Debian's chromium-driver; the drawn pixels are compared with the Keras decoder's."""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import tfvae
from conftest import closed_port, make_bars, one_error_line, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                   reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Two exports: a 2-d VAE (the pad), and a 4-d conditional VAE with the per-class prior (sliders)."""
    root = tmp_path_factory.mktemp("web")
    x, y = make_bars(1200, seed=5)
    data = root / "bars.npz"
    np.savez(data, x_train=x[:1000], y_train=y[:1000], x_test=x[1000:], y_test=y[1000:])
    out = {}
    for name, options in (("pad", {"latent_dim": 2}), ("cond", {"latent_dim": 4, "condition": "label", "prior": "class"})):
        run = root / f"run-{name}"
        tfvae.fit(f"npz:{data}", out=str(run), hidden="64", epochs=4, batch_size=64, progress=False, **options)
        from tfvae.cli.main import main

        with pytest.raises(SystemExit) as e:
            main(["export", str(run), "-o", str(root / f"exp-{name}"), "--quantize", "int8", "--quantize", "none",
                  "--samples", "256"])
        assert e.value.code == 0
        out[name] = (tfvae.load(str(run)), root / f"exp-{name}")
    return out


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Page:
    """A static server on the export's web/ folder and a headless Chromium on its page."""

    def __init__(self, folder, width=1100, height=1300, url=None):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.port = _free_port()
        self.server = subprocess.Popen([sys.executable, "-m", "http.server", str(self.port), "-b", "127.0.0.1",
                                        "-d", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        self.driver.set_script_timeout(90)
        for _ in range(100):  # the server is up
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.driver.get(url or f"http://127.0.0.1:{self.port}/index.html")

    def call(self, body, *args):
        """Runs `body` (async JavaScript, `t` is window.tfvae once ready, `args` the arguments)."""
        script = ("const done = arguments[arguments.length - 1], args = Array.from(arguments).slice(0, -1);"
                  "const wait = () => window.tfvae ? window.tfvae.ready.then(async (t) => {" + body + "})"
                  ".then((v) => done({value: v}), (e) => done({error: String(e && e.stack || e)}))"
                  " : setTimeout(wait, 20); wait();")
        out = self.driver.execute_async_script(script, *args)
        assert "error" not in out, out["error"]
        return out["value"]

    def canvas(self, element_id):
        """The canvas's pixels as (height, width, 3) uint8."""
        w, h, data = self.call(f"const c = document.getElementById('{element_id}');"
                               "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                               "return [c.width, c.height, Array.from(d)];")
        return np.asarray(data, np.uint8).reshape(h, w, 4)[..., :3]

    def close(self):
        self.driver.quit()
        self.server.kill()
        self.server.wait()


@pytest.fixture
def page(request, pages):
    opened = []

    def open_page(name, **kw):
        p = Page(pages[name][1] / "web", **kw)
        opened.append(p)
        return p

    yield open_page
    for p in opened:
        p.close()


def tolerance(manifest, variant):
    """Gray levels a drawn pixel may differ from the Keras decoder's: the variant's measured error, and rounding."""
    (d,) = [d for d in manifest["decoders"] if d["variant"] == variant]
    return int(np.ceil(d["max_abs_error"] * 255)) + 1


def keras_pixels(trained, z, labels=None):
    return np.round(np.clip(trained.decode(np.asarray(z, np.float32), label=labels), 0, 1) * 255)[..., 0]


def cells(grid, count, columns, h=28, w=28, gap=1):
    return np.stack([grid[(i // columns) * (h + gap):(i // columns) * (h + gap) + h,
                          (i % columns) * (w + gap):(i % columns) * (w + gap) + w, 0] for i in range(count)])


@needs_browser
def test_the_page_draws_the_keras_decoders_pixels_for_a_known_code(pages, page):
    trained, exp = pages["pad"]
    report = json.loads((exp / "report.json").read_text())
    p = page("pad")
    manifest = p.call("return t.manifest;")
    # the smallest decoder within the export's error target, with a fixed batch and float32 in and out
    from tfvae.export.exporter import meets_target

    ok = [d for d in manifest["decoders"] if meets_target(d)]
    assert manifest["chosen"] == report["web"]["chosen"] == min(ok, key=lambda d: d["bytes"])["variant"]
    assert manifest["chosen"] == "int8"  # on this model int8 meets the target (max error < 0.06)
    assert manifest["batch"] == 16 and {d["variant"] for d in manifest["decoders"]} == {"int8", "none"}
    assert p.call("return t.variant;") == "int8"
    z = [[0.7, -1.2]]
    for variant in ("int8", "none"):
        p.call("await t.setVariant(args[0]); await t.showCode(args[1]); return true;", variant, z[0])
        drawn = p.canvas("explore-image")[..., 0].astype(float)
        assert drawn.shape == (28, 28)
        err = np.abs(drawn - keras_pixels(trained, z)[0])
        assert err.max() <= tolerance(manifest, variant), (variant, err.max())
    assert err.max() <= 1  # float32: the Keras decoder's pixels, up to rounding
    status = p.driver.find_element("id", "status").text
    assert "decoder float32" in status and "ms per batch" in status and "ready in" in status


@needs_browser
def test_the_pad_is_the_live_manifold_the_pointer_is_z(pages, page):
    from selenium.webdriver.common.action_chains import ActionChains

    trained, _ = pages["pad"]
    p = page("pad")
    manifest = p.call("return t.manifest;")
    pad = p.driver.find_element("id", "pad")
    assert pad.is_displayed() and not p.driver.find_elements("css selector", "#sliders .slider")
    size = pad.size
    for fx, fy in ((0.25, 0.75), (0.8, 0.1)):
        ActionChains(p.driver).move_to_element_with_offset(
            pad, int((fx - 0.5) * size["width"]), int((fy - 0.5) * size["height"])).click().perform()
        time.sleep(0.3)
        z = p.call("return t.code;")
        expect = p.call("return t.padCode(args[0], args[1]);", fx, fy)
        span = np.ptp(manifest["pad"], axis=1).max()
        assert np.allclose(z, expect, atol=3 * span / size["width"])  # within 3 pixels of the pointer
        err = np.abs(p.canvas("explore-image")[..., 0].astype(float) - keras_pixels(trained, [z])[0])
        assert err.max() <= tolerance(manifest, manifest["chosen"])
    # the pad spans the prior N(0, I) +- 3 standard deviations: bottom left (-3, -3), top right (3, 3)
    assert np.allclose(p.call("return t.padCode(0, 1);"), [-3, -3], atol=1e-6)
    assert np.allclose(p.call("return t.padCode(1, 0);"), [3, 3], atol=1e-6)


@needs_browser
def test_prior_samples_are_reproducible_by_seed_and_are_the_decoders_images(pages, page):
    trained, _ = pages["pad"]
    p = page("pad")
    manifest = p.call("return t.manifest;")
    first = p.call("return await t.drawSamples(3);")
    grid3 = p.canvas("grid")
    again = p.call("return await t.drawSamples(3);")
    assert again["codes"] == first["codes"] and np.array_equal(p.canvas("grid"), grid3)
    other = p.call("return await t.drawSamples(4);")
    assert not np.allclose(other["codes"], first["codes"])
    got = cells(grid3, 16, 4)
    err = np.abs(got.astype(float) - keras_pixels(trained, first["codes"]))
    assert err.max() <= tolerance(manifest, manifest["chosen"])
    # the page's own draws follow the prior N(0, I): moments of 4,000 of them
    draws = np.asarray(p.call("return t.drawPrior(4000, 11, null);"))
    assert np.abs(draws.mean(axis=0)).max() < 0.06 and np.abs(draws.std(axis=0) - 1).max() < 0.05
    # a mixture prior (mog, VampPrior): components by their weights
    draws = np.asarray(p.call(
        "const p = t.manifest.prior, kept = {...p}; Object.assign(p, {weights: [0.25, 0.75], loc: [[-5, 0], [5, 0]],"
        "scale: [[1, 1], [0.5, 0.5]]}); try { return t.drawPrior(4000, 12, null); } finally { Object.assign(p, kept); }"))
    right = draws[:, 0] > 0
    assert abs(right.mean() - 0.75) < 0.03
    assert np.allclose(draws[right].mean(axis=0), [5, 0], atol=0.05) and np.allclose(draws[right].std(axis=0), 0.5, atol=0.03)
    assert np.allclose(draws[~right].std(axis=0), 1, atol=0.06)
    # a VampPrior per class (component_class): the components of the draw's label, by their weights
    draws = np.asarray(p.call(
        "const p = t.manifest.prior, kept = {...p}; Object.assign(p, {weights: [0.1, 0.3, 0.5, 0.1], "
        "loc: [[-20, 0], [-10, 0], [10, 0], [20, 0]], scale: [[1, 1], [1, 1], [2, 2], [2, 2]], "
        "component_class: [0, 0, 1, 1]}); const labels = Array.from({length: 4000}, (_, i) => i < 2000 ? 0 : 1);"
        "try { return t.drawPrior(4000, 13, labels); } finally { delete p.component_class; Object.assign(p, kept); }"))
    zero, one = draws[:2000, 0], draws[2000:, 0]
    assert zero.max() < 0 < one.min()  # only the label's components
    assert abs(np.mean(zero < -15) - 0.25) < 0.03 and abs(np.mean(one < 15) - 5 / 6) < 0.03
    assert np.allclose(one[one < 15].std(), 2, rtol=0.08)
    # a click on the grid draws the next seed
    p.driver.find_element("id", "grid").click()
    time.sleep(0.3)
    assert p.driver.find_element("id", "seed").get_attribute("value") == "5"


def _png(data_url):
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])), format="png")


@needs_browser
def test_interpolation_runs_between_the_codes_of_shipped_training_images(pages, page):
    trained, _ = pages["pad"]
    p = page("pad")
    manifest = p.call("return t.manifest;")
    codes = manifest["codes"]
    assert len(codes) == 8 and all(c["image"] for c in codes)
    # the shipped codes are the posterior means of the shipped training images
    images = np.stack([_png(c["image"]) for c in codes])[..., None]
    assert np.allclose(trained.encode(images), [c["z"] for c in codes], atol=1e-4)
    line = p.call("return await t.interpolate(2, 5);")
    assert np.allclose(line["codes"][0], codes[2]["z"]) and np.allclose(line["codes"][-1], codes[5]["z"])
    assert np.allclose(np.diff(line["codes"], axis=0), (np.subtract(codes[5]["z"], codes[2]["z"])) / 7, atol=1e-6)
    err = np.abs(cells(p.canvas("interp"), 8, 4).astype(float) - keras_pixels(trained, line["codes"]))
    assert err.max() <= tolerance(manifest, manifest["chosen"])
    # picking thumbnails: A, then B
    thumbs = p.driver.find_elements("css selector", "#interp-thumbs button")
    thumbs[4].click()
    time.sleep(0.2)
    thumbs[1].click()
    time.sleep(0.3)
    assert [t.get_attribute("class") for t in thumbs][1] == "b" and thumbs[4].get_attribute("class") == "a"


@needs_browser
def test_a_conditional_page_draws_the_class_asked_for_and_its_sliders_follow_the_principal_directions(pages, page):
    trained, _ = pages["cond"]
    p = page("cond")
    manifest = p.call("return t.manifest;")
    assert manifest["labels"]["classes"] == list(range(8)) and manifest["prior"]["per_class"]
    axes = np.asarray(manifest["directions"]["axes"])
    assert axes.shape == (4, 4) and np.allclose(axes @ axes.T, np.eye(4), atol=1e-5)
    # every class: the grid's labels cycle through the classes; one class: all of it
    out = p.call("return await t.drawSamples(1);")
    assert out["labels"] == [i % 8 for i in range(16)]
    err = np.abs(cells(p.canvas("grid"), 16, 4).astype(float) - keras_pixels(trained, out["codes"], out["labels"]))
    assert err.max() <= tolerance(manifest, manifest["chosen"])
    p.call("const s = document.getElementById('label'); s.value = '6'; s.dispatchEvent(new Event('change'));"
           "await new Promise((r) => setTimeout(r, 300)); return true;")
    out = p.call("return await t.drawSamples(2);")
    assert out["labels"] == [6] * 16
    err = np.abs(cells(p.canvas("grid"), 16, 4).astype(float) - keras_pixels(trained, out["codes"], out["labels"]))
    assert err.max() <= tolerance(manifest, manifest["chosen"])
    # slider 1 moves z along the first principal direction, in its standard deviations
    start = np.asarray(p.call("return t.start;"))
    t0 = axes @ (start - np.asarray(manifest["directions"]["mean"])) / np.asarray(manifest["directions"]["std"])
    p.call("const s = document.querySelectorAll('#sliders input')[0]; s.value = '2.5';"
           "s.dispatchEvent(new Event('input')); await new Promise((r) => setTimeout(r, 300)); return true;")
    z = np.asarray(p.call("return t.code;"))
    assert np.allclose(z, start + (2.5 - t0[0]) * manifest["directions"]["std"][0] * axes[0], atol=1e-5)
    err = np.abs(p.canvas("explore-image")[..., 0].astype(float) - keras_pixels(trained, [z], [6])[0])
    assert err.max() <= tolerance(manifest, manifest["chosen"])


@needs_browser
def test_the_page_fits_a_phone_screen_and_opened_as_a_file_says_to_serve_it(pages, page):
    p = page("cond", width=390, height=844)
    p.call("return true;")
    assert p.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert p.driver.execute_script("return getComputedStyle(document.getElementById('pad')).touchAction") == "none"
    p.driver.get("file://" + str(pages["cond"][1] / "web" / "index.html"))
    time.sleep(1)
    assert "serve the folder" in p.driver.find_element("id", "status").text


def test_the_web_folder_vendors_the_runtime_or_points_to_the_cdn(pages, tmp_path, capsys):
    trained, exp = pages["pad"]
    web = exp / "web"
    for f in ("index.html", "tfvae.js", "model/manifest.json", "litert/core/dist/index.js",
              "litert/core/wasm/litert_wasm_internal.wasm", "litert/core/wasm/litert_wasm_compat_internal.wasm",
              "litert/wasm-utils/dist/index.js", "litert/NOTICE.txt"):
        assert (web / f).is_file(), f
    assert '"@litertjs/core": "./litert/core/dist/index.js"' in (web / "index.html").read_text()
    code, out, err = run_cli(capsys, "export", trained.run_dir, "-o", tmp_path / "cdn", "--quantize", "none",
                             "--web-cdn", "--samples", "64")
    assert code == 0, err
    page_html = (tmp_path / "cdn" / "web" / "index.html").read_text()
    assert "https://cdn.jsdelivr.net/npm/@litertjs/core@2.5.3/dist/index.js" in page_html
    assert not (tmp_path / "cdn" / "web" / "litert").exists()
    report = json.loads((tmp_path / "cdn" / "report.json").read_text())
    assert report["web"]["runtime"] == "cdn" and report["web"]["bytes"] < 1_000_000
    assert "web page" in out and "from the CDN" in out
    code, _, _ = run_cli(capsys, "export", trained.run_dir, "-o", tmp_path / "none", "--quantize", "none", "--no-web",
                         "--samples", "64")
    assert code == 0 and not (tmp_path / "none" / "web").exists()
    # a newer version exported without a page takes the earlier version's page away
    code, _, err = run_cli(capsys, "export", trained.run_dir, "-o", tmp_path / "cdn", "--quantize", "none", "--no-web",
                           "--samples", "64")
    assert code == 0, err
    assert not (tmp_path / "cdn" / "web").exists() and (tmp_path / "cdn" / "saved_model" / "run-pad" / "2").is_dir()
    code, _, err = run_cli(capsys, "export", trained.run_dir, "-o", tmp_path / "both", "--web-cdn", "--no-web")
    assert code != 0 and "--web-cdn and --no-web contradict each other" in one_error_line(err)


def test_a_runtime_that_cannot_be_fetched_or_is_not_npms_is_one_clear_error_and_writes_no_version(
        pages, tmp_path, capsys, monkeypatch):
    trained, _ = pages["pad"]
    monkeypatch.setenv("TFVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TFVAE_NPM_REGISTRY", f"http://127.0.0.1:{closed_port()}")
    code, _, err = run_cli(capsys, "export", trained.run_dir, "-o", tmp_path / "off", "--quantize", "none")
    line = one_error_line("\n".join(x for x in err.splitlines() if not x.startswith("  fetching")))
    assert code != 0 and "cannot download the LiteRT.js runtime" in line and "--web-cdn" in line
    assert not (tmp_path / "off" / "saved_model").exists()
    bogus = tmp_path / "tarballs"
    bogus.mkdir()
    for name in ("litertjs-core-2.5.3.tgz", "litertjs-wasm-utils-2.5.3.tgz"):
        (bogus / name).write_bytes(b"not the package")
    monkeypatch.setenv("TFVAE_LITERTJS", str(bogus))
    code, _, err = run_cli(capsys, "export", trained.run_dir, "-o", tmp_path / "bad", "--quantize", "none")
    line = one_error_line("\n".join(x for x in err.splitlines() if not x.startswith("  fetching")))
    assert code != 0 and "is not @litertjs/core 2.5.3 as npm publishes it" in line
    assert not os.path.exists(tmp_path / "cache" / "litertjs-2.5.3")
