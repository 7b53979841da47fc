"""Automatic data curation (DINOv2 section 3; DINOv3's hierarchical k-means): from a large
uncurated folder (and optionally small curated seed sets) to an image list `pretrain` takes.

  embed     -> an embedding store: L2-normalised rows (memmap), the file list, content hashes
  dedup     -> exact (hash) then near duplicates (k-NN graph, union-find), eval-set overlap
  cluster   -> hierarchical k-means with resampling over a store or a stage's selection
  sample    -> balanced top-down sampling over the cluster tree
  retrieve  -> pool images near seed images (per seed) or in clusters the seeds fall in

Every stage writes a folder with `selection.npy` (rows of the store), `list.txt` (absolute
image paths: `dinolab pretrain DIR/list.txt`), `source.json` and `report.json`; the next stage
takes that folder as its input. A higher layer: imports models, data and eval; only cli
imports it.
"""
