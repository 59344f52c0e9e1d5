"""Many clips on many GPUs: `human3r batch` on Ray Core actors.

This package is the only part of the product that imports `ray` (an optional extra:
`pip install -e '.[farm]'`), and only in `cluster.py` and `driver.py`. The other modules
(`inputs`, `store`, `worker`, `progress`) are plain Python so they can be read and tested alone.

Shape: the driver (`driver.run_batch`) probes the clips, skips finished ones, starts one
`worker.ClipWorker` actor per GPU (or per few CPU cores), and hands clips out longest first, one in
flight per actor. A worker streams the clip through the same engine as `human3r infer` into an
attempt-unique temporary file beside the result and renames it when complete.
"""
