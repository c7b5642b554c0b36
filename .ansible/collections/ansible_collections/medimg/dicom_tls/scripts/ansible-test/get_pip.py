"""Stand-in for the pip bootstrap script that ansible-test downloads from a host outside the
package registries: ensurepip gives the new venv a pip, then pip installs what was asked from PyPI."""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
