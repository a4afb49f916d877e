"""`service` and `clients` import, and the service app builds, with torch, transformers and vllm absent."""

import subprocess
import sys

from tests.support.procs import REPO

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'transformers', 'vllm', 'peft'}:
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, Block())
"""

CHECK = BLOCK + """
import service, service.app, service.orchestrator, clients, clients.sdk, clients.cli, planner_server.protocol
from service.settings import ServiceSettings
app = service.app.create_app(ServiceSettings(reasoner_url='http://127.0.0.1:1/v1'))
assert app.title == 'rsim'
try:
    import torch
except ImportError:
    pass
else:
    raise SystemExit('blocker failed')
print('light ok')
"""


def test_service_and_clients_import_without_heavy_packages():
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "light ok"


def test_cli_help_runs_without_heavy_packages():
    code = BLOCK + "from clients.cli import main\nmain(['strategies', '--local'])\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "self_reflection" in r.stdout and "termination" in r.stdout
