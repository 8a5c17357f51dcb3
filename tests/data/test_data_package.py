"""The data package as a whole: importing it never imports streamlit."""

from __future__ import annotations

import subprocess
import sys


def test_data_module_never_imports_streamlit() -> None:
    code = "import sys, cnn_explorer.data; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
