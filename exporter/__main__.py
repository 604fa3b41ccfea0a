"""`python -m exporter` runs dumont-exporter."""
import sys

from exporter.cli import main

sys.exit(main())
