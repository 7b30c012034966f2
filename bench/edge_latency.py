"""Per-sample latency and size of each TFLite decoder variant, against the SavedModel's decode.

    python bench/edge_latency.py RUN_DIR [--threads 1] [--repeats 50]

Exports RUN_DIR to a temporary folder (the same code as `tfvae export`), then times, on this
machine: each decoder_<variant>.tflite through the LiteRT interpreter, and the SavedModel's
`decode` signature loaded with tf.saved_model.load, at batch 1 and batch 64 (median of repeats,
after a warm-up call). Prints a table (markdown) and the machine it ran on.
"""

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--threads", type=int, default=None, help="LiteRT interpreter threads (default: its own)")
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()

    from tfvae.runtime import captured_output, import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    import tfvae
    from tfvae.export.exporter import export_run
    from tfvae.export.tflite import LiteDecoder, latency_per_sample

    trained = tfvae.load(args.run_dir)
    d = trained.config.latent_dim
    z = trained.model.reference_codes(256, 7)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        with captured_output():
            report = export_run(trained, out, name="bench", n_eval=256)
        sm = tf.saved_model.load(os.path.join(out, "saved_model", "bench", "1"))
        decode = sm.signatures["decode"]

        def saved_model_run(zb):
            return decode(z=tf.constant(zb))["images"].numpy()

        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in
                   os.walk(os.path.join(out, "saved_model", "bench", "1")) for f in fs)
        rows.append(("SavedModel decode (TensorFlow)", size,
                     latency_per_sample(saved_model_run, z, 1, args.repeats),
                     latency_per_sample(saved_model_run, z, 64, args.repeats), 0.0))
        for variant, entry in report["tflite"].items():
            with captured_output():
                lite = LiteDecoder(path=os.path.join(out, entry["file"]), threads=args.threads)
                b1 = latency_per_sample(lite, z, 1, args.repeats)
                b64 = latency_per_sample(lite, z, 64, args.repeats)
            rows.append((f"decoder_{variant}.tflite (LiteRT)", entry["bytes"], b1, b64, entry["max_abs_error"]))

    print(f"run: {args.run_dir} ({trained.config.model}, {trained.config.network}, latent {d})")
    print(f"machine: {machine()}; LiteRT threads: {args.threads or 'default'}; {time.strftime('%Y-%m-%d')}")
    print()
    print("| decoder | size | us/sample, batch 1 | us/sample, batch 64 | max abs error |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, size, b1, b64, err in rows:
        print(f"| {name} | {size / 1024:,.0f} KiB | {b1 * 1e6:,.1f} | {b64 * 1e6:,.2f} | {err:.1e} |")


if __name__ == "__main__":
    main()
