"""Verification against the reference's recorded outputs (not used by the product at run time).

- `arrays`: the one tolerance (`REL_TOL`) and the one array comparison every check uses.
- `model`: the network, view by view, against a fixture's `outputs_*.npz`.
- `post`: the engine's post-processing against a fixture's `postprocessed.npz`.

Used by `scripts/parity.py` and the tests (`tests/model/test_parity.py`, `tests/parity/`). A fixture
folder is laid out like `shared/fixtures/parity-small`.
"""
