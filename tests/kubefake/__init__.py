"""A fake Kubernetes API server over real HTTP, for tests (see ``server.py``)."""

from tests.kubefake.server import SEED_DIR, FakeKubeServer, RequestRecord, load_seed

__all__ = ["SEED_DIR", "FakeKubeServer", "RequestRecord", "load_seed"]
